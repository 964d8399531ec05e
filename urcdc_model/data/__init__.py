"""Datasets (KITTI Eigen, NYU-Depth-v2, procedural scenes), calibration and training augmentation.

- ``synthetic``: procedural frames with exact depth (``render_frame``, ``SyntheticDepthDataset``,
  ``write_kitti_drive``), built on ``scenes`` (random scene layouts) and ``raycast`` (the renderer).
- ``base``, ``kitti``, ``nyu``: split-file datasets for the real benchmarks; ``depth_datasets`` builds
  them from a training config.
- ``transforms``: KB crop, rotation, random crop, CutFlip, flip, colour jitter (official order).
- ``calib``: KITTI raw/object calibration and LiDAR-to-depth projection.
- ``contact_sheet``, ``bench_synthetic``: the README picture and the renderer benchmark.
"""
