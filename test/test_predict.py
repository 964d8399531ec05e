"""``python -m urcdc_model.predict`` on a real KITTI frame (the runtime's camera path), camera flags, flip TTA
blending, preprocessing, errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from urcdc_model.checkpoints import load_model, save_model
from urcdc_model.data.synthetic import KITTI_CX_PX, KITTI_CY_PX, KITTI_FOCAL_PX
from urcdc_model.deploy.runtime import DepthRuntime
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


@pytest.mark.parametrize("camera", [[], ["--intrinsics", str(KITTI_FOCAL_PX), str(KITTI_FOCAL_PX), str(KITTI_CX_PX),
                                          str(KITTI_CY_PX)]], ids=["fallback", "kitti-intrinsics"])
def test_predict_cli_kb_crop_no_flip_equals_library(tmp_path, nano_checkpoint, kitti_frame, camera):
    """An official-layout checkpoint (no metadata: KITTI canonical camera) runs the KB crop at its native
    352x1216, as the official test script does: with the fallback (the crop is its training input) and
    with KITTI's intrinsics."""
    out = tmp_path / "crop.npy"
    assert main(["--checkpoint", str(nano_checkpoint), "--image", str(kitti_frame), "--output", str(out),
                 "--kb-crop", "--no-flip-tta", *camera]) == 0
    depth = np.load(out)
    h, w = depth.shape
    top, left = h - 352, (w - 1216) // 2
    inside = np.zeros_like(depth, bool)
    inside[top:top + 352, left:left + 1216] = True
    assert (depth[~inside] == 0).all() and (depth[inside] > 0).all()
    model, _, _ = load_model(nano_checkpoint)
    image = normalize_rgb(kb_crop(read_rgb(kitti_frame))).unsqueeze(0)
    expected, _ = predict_depth(model, image, flip_tta=False)
    np.testing.assert_allclose(depth[inside].reshape(352, 1216), expected[0, 0].numpy(), rtol=1e-5, atol=1e-5)


def test_predict_cli_errors(tmp_path, nano_checkpoint, kitti_frame, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing.ckpt"), "--image", str(kitti_frame),
                 "--output", str(tmp_path / "o.npy")]) == 1
    err = capsys.readouterr().err
    assert "model file not found" in err and "missing.ckpt" in err
    not_image = tmp_path / "x.png"
    not_image.write_text("hello")
    assert main(["--checkpoint", str(nano_checkpoint), "--image", str(not_image),
                 "--output", str(tmp_path / "o.npy")]) == 1
    assert "not a readable image" in capsys.readouterr().err


# --- the camera: --intrinsics, --camera-info, the fallback ----------------------------------------------


@pytest.fixture(scope="module")
def kitti_sample(shared_data):
    """(image path, rgb, K, GT depth in metres) of a real full-resolution KITTI frame and its calibration."""
    import json

    root = shared_data / "kitti_depth_annotated"
    calib = json.loads((root / "intrinsics.json").read_text())
    name = calib["frames"][1]
    k = np.array([[calib["fx"], 0, calib["cx"]], [0, calib["fy"], calib["cy"]], [0, 0, 1]])
    gt = cv2.imread(str(root / "depth" / f"{name}.png"), cv2.IMREAD_UNCHANGED) / np.float32(calib["depth_scale"])
    path = root / "rgb" / f"{name}.png"
    return path, read_rgb(path), k, gt


@pytest.fixture(scope="module")
def default_runtime():
    return DepthRuntime.from_path("default", backend="torch", warmup_runs=0)


def _intrinsics_args(k) -> list[str]:
    return ["--intrinsics", *(repr(float(v)) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))]


def test_predict_on_full_resolution_kitti_is_the_runtime_path(tmp_path, kitti_sample, default_runtime, capsys):
    """predict --intrinsics == DepthRuntime.infer(intrinsics=K, flip_tta=True) (the node's call), on a
    1242x375 frame. Running the network at the image's own size instead (predict before issue 12)
    gives abs_rel 0.87 on this frame; the runtime path 0.25 with the current default model."""
    from urcdc_model.metrics import compute_depth_metrics

    path, rgb, k, gt = kitti_sample
    out = tmp_path / "d.npy"
    assert main(["--image", str(path), "--output", str(out), *_intrinsics_args(k)]) == 0
    assert "camera from --intrinsics" in capsys.readouterr().out
    depth = np.load(out)
    expected, _ = default_runtime.infer(rgb, k, flip_tta=True)
    np.testing.assert_allclose(depth, expected, rtol=1e-5, atol=1e-5)
    assert default_runtime.plan(rgb.shape[:2], k).network_hw[1] < rgb.shape[1] / 3  # the canonical size, not native
    assert compute_depth_metrics(gt, depth, dataset="kitti")["abs_rel"] < 0.6


def test_camera_info_yaml_gives_the_same_depth_as_intrinsics(tmp_path, kitti_sample, capsys):
    path, rgb, k, _ = kitti_sample
    fx, fy, cx, cy = (float(v) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
    info = tmp_path / "camera.yaml"
    # the raw K differs (another focal): P (rectified) must be the one used, as in the node
    info.write_text(f"""image_width: {rgb.shape[1]}
image_height: {rgb.shape[0]}
camera_name: kitti_left
camera_matrix:
  rows: 3
  cols: 3
  data: [{2 * fx}, 0, {cx}, 0, {2 * fy}, {cy}, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0, 0, 0, 0, 0]
projection_matrix:
  rows: 3
  cols: 4
  data: [{fx!r}, 0, {cx!r}, 0, 0, {fy!r}, {cy!r}, 0, 0, 0, 1, 0]
""")
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["--image", str(path), "--output", str(a), "--no-flip-tta", "--camera-info", str(info)]) == 0
    assert "projection_matrix" in capsys.readouterr().out
    assert main(["--image", str(path), "--output", str(b), "--no-flip-tta", *_intrinsics_args(k)]) == 0
    np.testing.assert_array_equal(np.load(a), np.load(b))

    wrong_size = tmp_path / "small.yaml"
    wrong_size.write_text(info.read_text().replace(f"image_width: {rgb.shape[1]}", "image_width: 640"))
    assert main(["--image", str(path), "--output", str(a), "--camera-info", str(wrong_size)]) == 1
    err = capsys.readouterr().err.strip()
    assert "small.yaml: image_width x image_height = 640x375" in err and "\n" not in err


def test_without_intrinsics_the_fallback_is_said_in_one_line(tmp_path, kitti_sample, default_runtime, capsys):
    path, rgb, _, _ = kitti_sample
    out = tmp_path / "d.npy"
    assert main(["--image", str(path), "--output", str(out), "--no-flip-tta"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("predict:")]
    assert len(lines) == 1 and "no --intrinsics/--camera-info" in lines[0] and "721.5 px" in lines[0]
    np.testing.assert_allclose(np.load(out), default_runtime.infer(rgb)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("values, field", [
    (["nan", "700", "600", "180"], "fx is nan"),
    (["700", "0", "600", "180"], "fy = 0 px"),
    (["-700", "700", "600", "180"], "fx = -700 px"),
    (["700", "700", "5000", "180"], "cx = 5000 px is far outside"),
    (["700", "700", "600"], "needs 4 values"),
    (["700", "7O0", "600", "180"], "FY = '7O0' is not a number"),
])
def test_bad_intrinsics_are_one_line_naming_the_field(tmp_path, kitti_frame, values, field, capsys):
    assert main(["--image", str(kitti_frame), "--output", str(tmp_path / "o.npy"), "--intrinsics", *values]) == 1
    err = capsys.readouterr().err.strip()
    assert field in err and "\n" not in err, err


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


def test_flip_blend_numpy_equals_torch():
    """The runtime (NumPy, every backend) and predict_depth (torch) blend flipped passes identically."""
    from urcdc_model.inference import flip_blend_array

    rng = np.random.default_rng(0)
    pred, flipped = rng.random((2, 1, 1, 6, 41), dtype=np.float32)
    expected = flip_blend(torch.from_numpy(pred), torch.from_numpy(flipped)).numpy()
    np.testing.assert_allclose(flip_blend_array(pred, flipped), expected, atol=1e-7)
    # the border columns come from one pass each: left from the flipped pass, right from the plain one
    out = flip_blend_array(pred, flipped)
    np.testing.assert_allclose(out[..., 0], flipped[..., -1], atol=1e-7)
    np.testing.assert_allclose(out[..., -1], pred[..., -1], atol=1e-7)


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
