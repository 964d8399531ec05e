"""Camera-augmented training data: random cameras, the inference plan applied to training frames, windows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from urcdc_model.data.cameras import CameraSampling, draw_camera, frame_to_network
from urcdc_model.data.kitti import KittiDepthDataset
from urcdc_model.data.synthetic import SyntheticDepthDataset
from urcdc_model.data.transforms import normalize_image
from urcdc_model.deploy.geometry import KITTI_FOCAL_PX, CanonicalCamera, plan_input
from urcdc_model.training.data import SampleSeededDataset, WindowCollate

CANONICAL = CanonicalCamera(KITTI_FOCAL_PX * 320 / 1242, (96, 320))


def test_random_cameras_stay_in_their_ranges():
    sampling = CameraSampling()
    rng = np.random.default_rng(0)
    focal_ratios, aspects, render_scales, depth_scales = [], [], [], []
    for _ in range(300):
        (height, width), k = draw_camera(rng, CANONICAL, sampling)
        focal_ratios.append(k[0, 0] * CANONICAL.train_size[1] / width / CANONICAL.focal_px)
        aspects.append(width / height)
        assert k[0, 0] == k[1, 1]
        assert abs(k[0, 2] - (width - 1) / 2) <= 0.03 * width and abs(k[1, 2] - (height - 1) / 2) <= 0.03 * height
        plan = plan_input((height, width), CANONICAL, k)
        render_scales.append(np.sqrt(height * width / (plan.resized_hw[0] * plan.resized_hw[1])))
        depth_scales.append(plan.depth_scale)
    assert 0.4 <= min(focal_ratios) < 0.5 and 2.5 < max(focal_ratios) <= 3.0
    assert 1.3 - 0.05 <= min(aspects) < 1.45 and 3.2 < max(aspects) <= 3.4 + 0.1   # height is rounded
    assert 0.7 * 0.9 <= min(render_scales) < 0.85 and 2.0 < max(render_scales) <= 2.5 * 1.1
    # the compute budget (shrinks: depth scale < 1) and the minimum side (enlarges: > 1) are both exercised
    assert min(depth_scales) < 0.9 and max(depth_scales) > 1.1


def test_dataset_sample_is_the_inference_plan_of_the_rendered_frame():
    dataset = SyntheticDepthDataset(6, seed=10, train=False, canonical=CANONICAL, cameras=CameraSampling(),
                                    cache_frames=True)
    sizes = set()
    for index in range(len(dataset)):
        frame = dataset.frame(index)
        sample = dataset[index]
        plan = plan_input(frame.rgb.shape[:2], CANONICAL, frame.intrinsics)
        expected = normalize_image(plan.image_to_network(frame.rgb).astype(np.float32) / 255.0)
        assert torch.equal(sample["image"], expected)
        expected_depth = np.minimum(plan.depth_to_network(frame.depth_m), 80.0)
        np.testing.assert_array_equal(sample["depth"][0].numpy(), expected_depth)
        assert sample["focal"] == pytest.approx(plan.network_intrinsics[0, 0])
        sizes.add(frame.rgb.shape[:2])
    assert len(sizes) == len(dataset)                 # every sample its own camera


def test_depth_labels_are_divided_by_the_depth_scale_and_clipped():
    # A wide camera whose canonical resize breaks the compute budget: the plan shrinks it (t < 1).
    height, width = 375, 1242
    k = np.array([[200.0, 0, 620.5], [0, 200.0, 187.0], [0, 0, 1]])
    depth_m = np.full((height, width), 10.0, np.float32)
    depth_m[:100] = 80.0                              # sky
    rgb = np.zeros((height, width, 3), np.uint8)
    plan = plan_input((height, width), CANONICAL, k)
    assert plan.depth_scale < 0.95
    image, labels, focal = frame_to_network(rgb, depth_m, k, CANONICAL, max_depth_m=80.0)
    assert image.shape[:2] == labels.shape == plan.network_hw
    inside = plan.crop_padding(labels)
    assert np.isclose(inside, 10.0 / plan.depth_scale).mean() > 0.5
    assert inside.max() == 80.0                       # sky clipped to what the network can output
    top, left, bottom, right = plan.pad_tlbr
    assert (top or bottom or left or right) and not labels[:top].any() and not labels[labels.shape[0] - bottom:].any()
    assert focal == pytest.approx(CANONICAL.focal_px * plan.depth_scale, rel=0.01)


def test_size_jitter_shows_the_frame_larger_or_smaller_with_labels_that_follow():
    """network_scale_range: the frame at a random scale × its plan size; depth labels / that scale (exact)."""
    dataset = SyntheticDepthDataset(1, seed=10, train=True, canonical=CANONICAL, cameras=CameraSampling(),
                                    cache_frames=True, network_scale_range=(0.8, 1.25))
    frame = dataset.frame(0)                          # cached: every sample below is this frame
    plan = plan_input(frame.rgb.shape[:2], CANONICAL, frame.intrinsics)
    plain_labels = plan.depth_to_network(frame.depth_m)
    plain_median = np.median(plain_labels[plain_labels > 0])
    scales = set()
    for _ in range(6):
        sample = dataset[0]
        scale = sample["focal"] / plan.network_intrinsics[0, 0]
        assert 0.78 < scale < 1.27
        scales.add(round(scale, 3))
        # the same scene shown `scale` times larger is labelled `scale` times nearer
        labels = sample["depth"][0].numpy()
        assert np.median(labels[labels > 0]) * scale == pytest.approx(plain_median, rel=0.03)
    assert len(scales) > 1
    with pytest.raises(ValueError, match="network_scale_range"):
        SyntheticDepthDataset(1, canonical=CANONICAL, network_scale_range=(1.2, 0.9))


def test_training_frames_are_padded_to_the_configured_multiples():
    """network_stride: the plan pads training frames as inference pads them, to any (rows, columns) multiples."""
    for stride in ((16, 32), (32, 32), (8, 8)):
        dataset = SyntheticDepthDataset(1, seed=11, train=False, canonical=CANONICAL, cameras=CameraSampling(),
                                        network_stride=stride)
        frame = dataset.frame(0)
        expected = plan_input(frame.rgb.shape[:2], CANONICAL, frame.intrinsics, stride=stride).network_hw
        assert tuple(dataset[0]["image"].shape[1:]) == expected
        assert expected[0] % stride[0] == 0 and expected[1] % stride[1] == 0


def test_window_collate_crops_one_window_per_batch():
    def sample(height, width):
        image = torch.arange(3 * height * width, dtype=torch.float32).reshape(3, height, width)
        return {"image": image, "image_cnn": image.clone(), "depth": image[:1] + 1, "focal": 1.0}

    torch.manual_seed(0)
    big = sample(40, 100)
    batch = WindowCollate([(32, 48)])([big, sample(48, 64)])
    assert batch["image"].shape == (2, 3, 32, 48) and batch["depth"].shape == (2, 1, 32, 48)
    found = [(t, l) for t in range(9) for l in range(53)
             if torch.equal(big["image"][:, t:t + 32, l:l + 48], batch["image"][0])]
    assert len(found) == 1
    t, l = found[0]
    assert torch.equal(batch["depth"][0], big["depth"][:, t:t + 32, l:l + 48])     # labels follow the image
    # a sample smaller than the window shrinks it (no padding the network would never see at inference)
    assert WindowCollate([(32, 48)])([big, sample(24, 40)])["image"].shape == (2, 3, 24, 40)
    # windows over the pixel budget keep fewer samples
    assert WindowCollate([(32, 48)], max_batch_pixels=2000)([big, big])["image"].shape[0] == 1
    assert WindowCollate([(32, 48)], max_batch_pixels=4000)([big, big])["image"].shape[0] == 2
    sizes = {tuple(WindowCollate([(32, 48), (48, 32)])([sample(60, 60)])["image"].shape[2:]) for _ in range(20)}
    assert sizes == {(32, 48), (48, 32)}


def test_centred_windows_are_cut_about_the_frame_centre_and_draw_the_same_random_numbers():
    """Where the ray embedding puts the principal point; the random stream stays that of random placement."""
    image = torch.arange(3 * 64 * 100, dtype=torch.float32).reshape(3, 64, 100)
    sample = {"image": image, "depth": image[:1] + 1}
    torch.manual_seed(3)
    centred = WindowCollate([(32, 48)], centred=True)([sample])
    after_centred = torch.rand(())
    torch.manual_seed(3)
    WindowCollate([(32, 48)])([sample])
    assert torch.equal(centred["image"][0], image[:, 16:48, 26:74])
    assert torch.equal(centred["depth"][0], sample["depth"][:, 16:48, 26:74])
    assert torch.equal(torch.rand(()), after_centred)


def test_whole_frame_batches_are_the_first_sample_uncropped():
    """What inference feeds the network for a tall camera (a batch-mate's height never cuts it)."""
    def sample(height, width):
        image = torch.rand(3, height, width)
        return {"image": image, "image_cnn": image.clone(), "depth": image[:1] + 1, "focal": 1.0}

    tall, wide = sample(64, 48), sample(24, 96)
    torch.manual_seed(0)
    always = WindowCollate([(32, 32)], whole_frame_fraction=1.0)([tall, wide])
    assert always["image"].shape == (1, 3, 64, 48) and torch.equal(always["image"][0], tall["image"])
    assert torch.equal(always["depth"][0], tall["depth"])
    shapes = [tuple(WindowCollate([(32, 32)], whole_frame_fraction=0.5)([tall, wide])["image"].shape)
              for _ in range(200)]
    whole = shapes.count((1, 3, 64, 48))
    assert 60 < whole < 140 and shapes.count((2, 3, 24, 32)) == 200 - whole


class _CountingFrames(torch.utils.data.Dataset):
    """Random frames of different sizes (drawn from the RNG the seeded wrapper sets) that count their loads."""

    def __init__(self):
        self.loads = 0

    def __len__(self):
        return 8

    def __getitem__(self, index):
        self.loads += 1
        image = torch.rand(3, 40 + 8 * index, 64)
        return {"image": image, "image_cnn": image.clone(), "depth": image[:1] + 1, "focal": float(index)}


def test_deferred_samples_load_only_what_the_batch_uses_and_make_the_same_batches():
    eager, deferred = _CountingFrames(), _CountingFrames()
    eager_set = SampleSeededDataset(eager, seed=3)
    deferred_set = SampleSeededDataset(deferred, seed=3, deferred=True)
    for collate, loads_per_batch in ((WindowCollate([(32, 32)], whole_frame_fraction=1.0), 1),
                                     (WindowCollate([(32, 48)], max_batch_pixels=2000), 1),
                                     (WindowCollate([(32, 32)]), 2)):
        deferred.loads = 0
        torch.manual_seed(5)
        got = collate([deferred_set[1], deferred_set[2]])
        torch.manual_seed(5)
        want = collate([eager_set[1], eager_set[2]])
        assert deferred.loads == loads_per_batch
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in ("image", "depth"))
    # a mix of whole-frame and window batches draws the same random numbers either way
    torch.manual_seed(6)
    got = [WindowCollate([(32, 32), (24, 48)], whole_frame_fraction=0.5)([deferred_set[i], deferred_set[i + 1]])
           for i in range(6)]
    torch.manual_seed(6)
    want = [WindowCollate([(32, 32), (24, 48)], whole_frame_fraction=0.5)([eager_set[i], eager_set[i + 1]])
            for i in range(6)]
    assert all(torch.equal(g["image"], w["image"]) for g, w in zip(got, want))
    assert len({tuple(g["image"].shape) for g in got}) > 1


def test_padded_whole_frames_replicate_the_edges_and_carry_no_labels_there():
    image = torch.rand(3, 40, 48)
    sample = {"image": image, "image_cnn": image.clone(), "depth": image[:1] + 1, "focal": 1.0}
    torch.manual_seed(1)
    shapes = set()
    for _ in range(30):
        batch = WindowCollate([(32, 32)], whole_frame_fraction=1.0, whole_frame_padding_px=12)([sample])
        _, _, height, width = batch["image"].shape
        assert height % 8 == 0 and width % 8 == 0 and 40 <= height <= 40 + 24 + 7 and 48 <= width <= 48 + 24 + 7
        labelled = (batch["depth"][0, 0] > 0).nonzero()
        top, left = labelled.min(0).values.tolist()
        # the frame itself sits unchanged inside; labels only there; padding copies the nearest edge pixel
        assert torch.equal(batch["image"][0, :, top:top + 40, left:left + 48], image)
        assert torch.equal(batch["depth"][0, :, top:top + 40, left:left + 48], sample["depth"])
        assert int((batch["depth"] > 0).sum()) == 40 * 48
        assert torch.equal(batch["image"][0, :, :top + 1, left], image[:, :1, 0].expand(-1, top + 1))
        assert torch.equal(batch["image_cnn"], batch["image"])
        shapes.add((height, width))
    assert len(shapes) > 3                                      # the padding is drawn afresh


def test_kitti_training_frames_go_through_the_plan(tmp_path, shared_data):
    root = shared_data / "kitti_depth_annotated"
    focal = json.loads((root / "intrinsics.json").read_text())["fx"]
    split = tmp_path / "split.txt"
    split.write_text(f"rgb/0000000050.png depth/0000000050.png {focal}\n")
    dataset = KittiDepthDataset(root, root, split, mode="train", canonical=CANONICAL)
    torch.manual_seed(0)
    sample = dataset[0]
    plan = plan_input((352, 1216), CANONICAL, np.array([[focal, 0, 607.5], [0, focal, 175.5], [0, 0, 1]]))
    assert tuple(sample["image"].shape[1:]) == plan.network_hw
    assert sample["focal"] == pytest.approx(plan.network_intrinsics[0, 0])
    assert 0.02 < (sample["depth"] > 0).float().mean() < 0.5 and float(sample["depth"].max()) <= 80.0
