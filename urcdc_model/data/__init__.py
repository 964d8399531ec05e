"""Datasets (KITTI Eigen, NYU-Depth-v2, procedural scenes), calibration and training augmentation.

Modules: ``synthetic`` (ray-cast scenes with exact depth, KITTI-layout drives), ``calib`` (KITTI
calibration and LiDAR projection), ``transforms`` (KB crop, rotation, crop, CutFlip, flip, jitter),
``kitti`` / ``nyu`` (the real datasets on a shared base class).
"""
