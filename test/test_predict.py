"""``python -m urcdc_model.predict`` on a real KITTI frame, flip TTA blending, preprocessing, errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from urcdc_model.checkpoints import load_model, save_model
from urcdc_model.inference import flip_blend, predict_depth
from urcdc_model.models import build_model
from urcdc_model.predict import main
from urcdc_model.preprocessing import IMAGENET_MEAN, IMAGENET_STD, kb_crop, normalize_rgb, read_rgb


@pytest.fixture(scope="module")
def nano_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("nano", max_depth=80.0, with_cnn=True)
    return save_model(tmp_path_factory.mktemp("ckpt") / "nano.safetensors", model, model.cfg)


@pytest.fixture(scope="module")
def kitti_frame(shared_data):
    frames = sorted((shared_data / "kitti_depth_annotated" / "rgb").glob("*.png"))
    if not frames:
        pytest.skip("no KITTI rgb frames in the shared sample data")
    return frames[0]


def test_predict_cli_on_real_kitti_frame(tmp_path, nano_checkpoint, kitti_frame, capsys):
    out, png, preview = tmp_path / "d.npy", tmp_path / "d.png", tmp_path / "d_color.png"
    code = main(["--checkpoint", str(nano_checkpoint), "--image", str(kitti_frame), "--output", str(out),
                 "--png", str(png), "--preview", str(preview)])
    assert code == 0, capsys.readouterr().err
    depth = np.load(out)
    assert depth.dtype == np.float32 and depth.shape == read_rgb(kitti_frame).shape[:2]
    assert np.isfinite(depth).all() and depth.min() > 0 and depth.max() <= 80.0
    stored = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored.shape == depth.shape
    np.testing.assert_allclose(stored / 256.0, depth, atol=0.5 / 256 + 1e-6)
    shown = cv2.imread(str(preview))
    assert shown.ndim == 3 and shown.shape[0] >= depth.shape[0] and shown.shape[1] > depth.shape[1]  # + colour bar


def test_predict_cli_kb_crop_no_flip_equals_library(tmp_path, nano_checkpoint, kitti_frame):
    out = tmp_path / "crop.npy"
    assert main(["--checkpoint", str(nano_checkpoint), "--image", str(kitti_frame), "--output", str(out),
                 "--kb-crop", "--no-flip-tta"]) == 0
    depth = np.load(out)
    h, w = depth.shape
    top, left = h - 352, (w - 1216) // 2
    inside = np.zeros_like(depth, bool)
    inside[top:top + 352, left:left + 1216] = True
    assert (depth[~inside] == 0).all() and (depth[inside] > 0).all()
    model, _, _ = load_model(nano_checkpoint)
    image = normalize_rgb(kb_crop(read_rgb(kitti_frame))).unsqueeze(0)
    expected, _ = predict_depth(model, image, flip_tta=False)
    np.testing.assert_array_equal(depth[inside].reshape(352, 1216), expected[0, 0].numpy())


def test_predict_cli_errors(tmp_path, nano_checkpoint, kitti_frame, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing.ckpt"), "--image", str(kitti_frame),
                 "--output", str(tmp_path / "o.npy")]) == 1
    assert "missing.ckpt: checkpoint file not found" in capsys.readouterr().err
    not_image = tmp_path / "x.png"
    not_image.write_text("hello")
    assert main(["--checkpoint", str(nano_checkpoint), "--image", str(not_image),
                 "--output", str(tmp_path / "o.npy")]) == 1
    assert "not a readable image" in capsys.readouterr().err


def test_flip_blend_is_the_official_border_blended_mean():
    w = 101
    pred = torch.rand(1, 1, 3, w)
    from_flipped = torch.rand(1, 1, 3, w)
    back = from_flipped.flip(-1)
    out = flip_blend(pred, from_flipped)
    xs = np.linspace(0, 1, w)
    left, right, middle = xs < 0.05, xs > 0.95, (xs >= 0.1) & (xs <= 0.9)
    # official weights: the outer 5% of columns come from one pass only (left: the flipped pass, as
    # monodepth's post-processing), ramping linearly to the plain mean by 10%
    torch.testing.assert_close(out[..., left], back[..., left])
    torch.testing.assert_close(out[..., right], pred[..., right])
    torch.testing.assert_close(out[..., middle], 0.5 * (pred + back)[..., middle])


def test_predict_depth_flip_equals_blend_of_two_passes():
    torch.manual_seed(0)
    model = build_model("nano", with_cnn=False).eval()
    image = torch.randn(1, 3, 48, 80)
    depth, conf = predict_depth(model, image, flip_tta=True)
    with torch.no_grad():
        a, b = model(image), model(image.flip(-1))
    torch.testing.assert_close(depth, flip_blend(a["depth"], b["depth"]))
    torch.testing.assert_close(conf, flip_blend(a["confidence"], b["confidence"]))
    plain, _ = predict_depth(model, image, flip_tta=False)
    torch.testing.assert_close(plain, a["depth"])


def test_normalize_rgb_and_kb_crop():
    rgb = np.random.default_rng(0).integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    tensor = normalize_rgb(rgb)
    expected = (rgb.astype(np.float32) / 255.0 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    crop = kb_crop(rgb)
    assert crop.shape == (352, 1216, 3) and np.array_equal(crop, rgb[23:, 13:1229])
    with pytest.raises(ValueError, match="expected uint8"):
        normalize_rgb(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="--kb-crop needs"):
        kb_crop(rgb[:300])


def test_preview_draws_near_red_far_blue_no_depth_grey_with_a_colour_bar(tmp_path):
    """The report's convention: turbo with near = red, a colour bar in metres, grey where there is no depth."""
    from urcdc_model.visualize import PREVIEW_DPI, save_depth_preview

    height, width = 60, 200
    depth = np.tile(np.linspace(2.0, 60.0, width, dtype=np.float32), (height, 1))  # near on the left
    depth[:, :20] = 0  # no depth (as outside --kb-crop)
    path = save_depth_preview(tmp_path / "p.png", depth, 80.0, "test")
    rgb = cv2.imread(str(path))[..., ::-1].astype(int)
    assert rgb.shape[1] >= width + 0.5 * PREVIEW_DPI  # room for the colour bar and its labels
    row = rgb.shape[0] - height // 2  # the image is drawn at its own size along the bottom edge
    grey, near, far = rgb[row, 10], rgb[row, 30], rgb[row, width - 10]
    assert np.ptp(grey) < 8 and 100 < grey[0] < 180, grey
    assert near[0] > 150 and near[0] > near[2] + 100, near
    assert far[2] > far[0] + 50, far
    bar = rgb[:, width + 10:]
    assert (np.ptp(bar, axis=-1) > 100).any()  # the colour bar has saturated colours
