"""KITTI and NYU loaders on the real sample frames: GT decoding, official train/eval processing, errors."""
from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from urcdc_model.data.base import SplitEntry, read_depth_png, read_split_file
from urcdc_model.data.depth_datasets import build_train_eval
from urcdc_model.data.kitti import KittiDepthDataset
from urcdc_model.data.nyu import NyuDepthDataset, zero_invalid_border
from urcdc_model.data.synthetic import write_kitti_drive
from urcdc_model.data.transforms import AugmentConfig

KITTI_FRAMES = ("0000000005", "0000000050", "0000000100")
NYU_FRAMES = ("00000", "00050", "00100")


def kitti_split(tmp_path, shared_data, extra: str = "") -> tuple:
    root = shared_data / "kitti_depth_annotated"
    focal = json.loads((root / "intrinsics.json").read_text())["fx"]
    lines = [f"rgb/{f}.png depth/{f}.png {focal}" for f in KITTI_FRAMES]
    split = tmp_path / "kitti_split.txt"
    split.write_text("\n".join(lines) + "\n" + extra)
    return root, split


def nyu_split(tmp_path, shared_data, name: str = "nyu_split.txt") -> tuple:
    root = shared_data / "nyu"
    split = tmp_path / name
    split.write_text("".join(f"/rgb/rgb_{f}.jpg /depth/sync_depth_{f}.png 518.8579\n" for f in NYU_FRAMES))
    return root, split


def test_annotated_kitti_gt_decodes_to_the_documented_range(shared_data):
    for frame in KITTI_FRAMES:
        depth = read_depth_png(shared_data / "kitti_depth_annotated" / "depth" / f"{frame}.png", 256.0)
        assert depth.shape == (375, 1242)
        valid = depth > 0
        assert 0.1 < valid.mean() < 0.35                      # ~20% annotated
        assert 1.0 < depth[valid].min() < 10.0 and 50.0 < depth[valid].max() < 90.0


def test_nyu_gt_decodes_in_metres(shared_data):
    for frame in NYU_FRAMES:
        depth = read_depth_png(shared_data / "nyu" / "depth" / f"sync_depth_{frame}.png", 1000.0)
        assert depth.shape == (480, 640)
        valid = depth > 0
        assert valid.mean() > 0.5
        assert 0.3 < depth[valid].min() and depth[valid].max() < 10.0 and 1.0 < np.median(depth[valid]) < 6.0


def test_kitti_eval_samples_follow_the_official_loader(tmp_path, shared_data):
    root, split = kitti_split(tmp_path, shared_data, extra="rgb/0000000005.png None 707.0493\n")
    dataset = KittiDepthDataset(root, root, split, mode="eval")
    assert len(dataset) == 4
    sample = dataset[0]
    assert sample["image"].shape == (3, 352, 1216) and sample["depth"].shape == (1, 352, 1216)
    assert sample["has_valid_depth"] and sample["focal"] == pytest.approx(707.0493)
    full = read_depth_png(root / "depth" / "0000000005.png", 256.0)
    np.testing.assert_array_equal(sample["depth"][0].numpy(), full[375 - 352:, 13:13 + 1216])   # KB crop
    assert torch.equal(sample["image"], sample["image_cnn"])
    assert not dataset[3]["has_valid_depth"]                  # 'None' ground truth


def test_kitti_train_samples_are_augmented_crops(tmp_path, shared_data):
    root, split = kitti_split(tmp_path, shared_data)
    dataset = KittiDepthDataset(root, root, split, mode="train")
    torch.manual_seed(0)
    sample = dataset[1]
    assert sample["image"].shape == (3, 352, 1120) and sample["depth"].shape == (1, 352, 1120)
    original = read_depth_png(root / "depth" / "0000000050.png", 256.0)
    values = set(np.unique(original).tolist())
    assert set(np.unique(sample["depth"].numpy()).tolist()) <= values      # nearest rotation, no blending
    assert (sample["depth"] > 0).float().mean() > 0.05


def test_nyu_train_zeroes_the_border_and_eval_keeps_full_frames(tmp_path, shared_data):
    root, split = nyu_split(tmp_path, shared_data)
    depth = read_depth_png(root / "depth" / "sync_depth_00050.png", 1000.0)
    masked = zero_invalid_border(depth)
    assert not masked[:45].any() and not masked[472:].any() and not masked[:, :43].any() and not masked[:, 608:].any()
    np.testing.assert_array_equal(masked[45:472, 43:608], depth[45:472, 43:608])
    train = NyuDepthDataset(root, root, split, mode="train")
    torch.manual_seed(1)
    sample = train[1]
    assert sample["image"].shape == (3, 480, 640) and sample["depth"].shape == (1, 480, 640)
    evaluation = NyuDepthDataset(root, root, split, mode="eval")[2]
    np.testing.assert_array_equal(evaluation["depth"][0].numpy(),
                                  read_depth_png(root / "depth" / "sync_depth_00100.png", 1000.0))


def test_official_nyu_test_list_must_have_654_frames(tmp_path, shared_data):
    root, split = nyu_split(tmp_path, shared_data, name="nyudepthv2_test_files_with_gt.txt")
    with pytest.raises(ValueError, match="654"):
        NyuDepthDataset(root, root, split, mode="eval")


def test_split_file_errors_name_file_and_line(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("a.png b.png 721.5\nc.png d.png seven\n")
    with pytest.raises(ValueError, match=r"split.txt:2: focal 'seven'"):
        read_split_file(split, 721.5)
    split.write_text("a.png b.png 1 extra\n")
    with pytest.raises(ValueError, match="expected 'rgb_path gt_path focal'"):
        read_split_file(split, 721.5)
    split.write_text("/scene/rgb_1.jpg None\n")
    assert read_split_file(split, 518.0) == [SplitEntry("scene/rgb_1.jpg", None, 518.0, 1)]


def test_missing_wrong_size_and_unreadable_gt_are_clear(tmp_path, shared_data):
    root = shared_data / "kitti_depth_annotated"
    split = tmp_path / "split.txt"
    split.write_text("rgb/0000000005.png depth/missing.png\n")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        KittiDepthDataset(root, root, split, mode="train")[0]
    assert not KittiDepthDataset(root, root, split, mode="eval")[0]["has_valid_depth"]
    small = tmp_path / "depth" / "small.png"
    small.parent.mkdir()
    cv2.imwrite(str(small), np.ones((10, 10), np.uint16))
    split.write_text("rgb/0000000005.png depth/small.png\n")
    with pytest.raises(ValueError, match=r"small.png: ground truth is 10x10 but the image .* is 375x1242"):
        KittiDepthDataset(root, tmp_path, split, mode="train")[0]
    (tmp_path / "depth" / "broken.png").write_bytes(b"not a png")
    split.write_text("rgb/0000000005.png depth/broken.png\n")
    with pytest.raises(ValueError, match="broken.png: unreadable"):
        KittiDepthDataset(root, tmp_path, split, mode="train")[0]
    rgb8 = tmp_path / "depth" / "rgb8.png"
    cv2.imwrite(str(rgb8), np.ones((375, 1242, 3), np.uint8))
    split.write_text("rgb/0000000005.png depth/rgb8.png\n")
    with pytest.raises(ValueError, match="single-channel uint16"):
        KittiDepthDataset(root, tmp_path, split, mode="train")[0]


def test_kitti_velodyne_ground_truth_from_a_written_drive(tmp_path):
    write_kitti_drive(tmp_path, num_frames=2, seed=5, height=375, width=1242, write_velodyne=True)
    rgb = "2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000001.png"
    gt = "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000001.png"
    split = tmp_path / "split.txt"
    split.write_text(f"{rgb} {gt} 721.5377\n{rgb} None 721.5377\n")
    annotated = KittiDepthDataset(tmp_path, tmp_path, split, mode="eval")
    lidar = KittiDepthDataset(tmp_path, tmp_path, split, mode="eval", gt_source="velodyne")
    dense = annotated[0]["depth"][0].numpy()
    sparse = lidar[1]["depth"][0].numpy()                      # GT from LiDAR although the split says None
    both = (sparse > 0) & (dense > 0)
    assert both.sum() > 1000
    np.testing.assert_allclose(sparse[both], dense[both], atol=1 / 256 + 1e-4)


def test_build_train_eval_for_the_trainer(tmp_path, shared_data):
    root, split = kitti_split(tmp_path, shared_data)
    data = SimpleNamespace(dataset="kitti", data_path=str(root), gt_path=str(root), filenames_file=str(split),
                           filenames_file_eval="", height=320, width=1024, rotate_max_deg=1.0,
                           cutflip_probability=0.5, hflip_probability=0.5, color_probability=0.5)
    train, evaluation = build_train_eval(data)
    assert train.augment.kb_crop and (train.augment.crop_height, train.augment.crop_width) == (320, 1024)
    assert train[0]["image"].shape == (3, 320, 1024)
    assert evaluation.mode == "eval" and len(evaluation) == 3


def _write_stereo_frame(root, left_m: float, right_m: float) -> str:
    """One KITTI frame whose left/right images are black/white and whose GT is left_m/right_m metres."""
    drive = root / "2011_09_26" / "2011_09_26_drive_0001_sync"
    for camera, value, depth_m in (("image_02", 0, left_m), ("image_03", 255, right_m)):
        (drive / camera / "data").mkdir(parents=True)
        cv2.imwrite(str(drive / camera / "data" / "0000000000.png"), np.full((375, 1242, 3), value, np.uint8))
        gt_dir = drive / "proj_depth" / "groundtruth" / camera
        gt_dir.mkdir(parents=True)
        cv2.imwrite(str(gt_dir / "0000000000.png"), np.full((375, 1242), depth_m * 256, np.uint16))
    return ("2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png "
            "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000000.png 721.5377\n")


@pytest.mark.parametrize("use_right", [False, True])
def test_kitti_use_right_trains_on_both_cameras_with_their_own_gt(tmp_path, use_right):
    split = tmp_path / "split.txt"
    split.write_text(_write_stereo_frame(tmp_path, left_m=10.0, right_m=20.0))
    augment = AugmentConfig(rotate_max_deg=0.0, crop_height=352, crop_width=1120, cutflip_probability=0.0,
                            hflip_probability=0.0, color_probability=0.0)
    dataset = KittiDepthDataset(tmp_path, tmp_path, split, mode="train", augment=augment, use_right=use_right)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        sample = dataset[0]
        brightness = float(sample["image"].mean())
        depth = sample["depth"][sample["depth"] > 0]
        assert torch.allclose(depth, depth[0])           # one camera's GT per sample, never mixed
        seen.add(("white" if brightness > 0 else "black", round(float(depth[0]))))
    assert seen == ({("black", 10), ("white", 20)} if use_right else {("black", 10)})
    evaluation = KittiDepthDataset(tmp_path, tmp_path, split, mode="eval", use_right=use_right)
    assert float(evaluation[0]["depth"].max()) == 10.0    # evaluation always reads the left camera


def test_use_right_is_refused_for_nyu(tmp_path, shared_data):
    root, split = nyu_split(tmp_path, shared_data)
    data = SimpleNamespace(dataset="nyu", data_path=str(root), gt_path=str(root), filenames_file=str(split),
                           filenames_file_eval="", height=416, width=544, rotate_max_deg=2.5, use_right=True,
                           cutflip_probability=0.5, hflip_probability=0.5, color_probability=0.5)
    with pytest.raises(ValueError, match="use_right applies to KITTI"):
        build_train_eval(data)
