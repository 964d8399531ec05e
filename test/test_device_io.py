"""Pre/post-processing as torch ops (the CUDA path) against the NumPy/cv2 path, checked on the CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame
from urcdc_model.deploy.device_io import DeviceFrameIO
from urcdc_model.deploy.geometry import CanonicalCamera, plan_input
from urcdc_model.deploy.runtime import DepthRuntime
from urcdc_model.preprocessing import normalize_rgb_array

CANONICAL = CanonicalCamera(185.9, (96, 320))
IO = DeviceFrameIO("cpu")


@pytest.mark.parametrize("frame_hw, network_hw", [
    ((375, 1242), None),          # shrink by a non-integer factor, pad to the stride
    ((48, 160), None),            # enlarge (below the minimum side)
    ((375, 1242), (64, 96)),      # a static model: fitted in, aspect kept, padded
])
def test_frame_to_network_matches_the_numpy_path(frame_hw, network_hw):
    rgb = render_frame(HELD_OUT_SEED + 3, kind="street", height=frame_hw[0], width=frame_hw[1]).rgb
    plan = plan_input(frame_hw, CANONICAL, network_hw=network_hw)
    expected = normalize_rgb_array(plan.image_to_network(rgb))[None]
    actual = IO.frame_to_network(rgb, plan).numpy()
    assert actual.shape == expected.shape
    # the same weights; cv2 rounds in fixed point, so a pixel may land one grey level apart
    grey_level = 1.0 / (255 * 0.225)
    assert np.abs(actual - expected).max() <= 1.01 * grey_level
    assert (np.abs(actual - expected) > 1e-4).mean() < 0.1  # measured: 7.5 % at 1242 → 320
    border = plan.pad_tlbr[0]
    if border:  # replicated edge, exactly as cv2.BORDER_REPLICATE
        np.testing.assert_allclose(actual[..., :border, :], np.repeat(actual[..., border:border + 1, :], border, 2))


def test_network_to_frame_matches_the_numpy_path():
    plan = plan_input((375, 1242), CANONICAL, np.array([[700.0, 0, 620], [0, 700.0, 187], [0, 0, 1]]))
    network_map = np.random.default_rng(0).uniform(1, 80, plan.network_hw).astype(np.float32)
    expected = plan.output_to_frame(network_map)
    actual = IO.network_to_frame(torch.from_numpy(network_map)[None, None], plan).numpy()
    assert actual.shape == expected.shape == (375, 1242) and plan.depth_scale != 1.0
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=2e-3)  # cv2 interpolates with float32 weights


@pytest.mark.parametrize("flip_tta", [False, True])
def test_runtime_uses_the_device_path_and_agrees(nano_checkpoint, flip_tta, monkeypatch):
    """A torch runtime given the device path (CPU here; CUDA in use) returns what the NumPy path does."""
    runtime = DepthRuntime.from_path(nano_checkpoint, backend="torch", warmup_runs=0)
    frame = render_frame(HELD_OUT_SEED + 5, kind="street", height=150, width=500).rgb
    expected = runtime.infer(frame, flip_tta=flip_tta)
    runtime._device_io = IO
    from urcdc_model.deploy import geometry

    def no_host_resize(*args, **kwargs):
        raise AssertionError("the device path must not resize on the host")

    monkeypatch.setattr(geometry.InputPlan, "image_to_network", no_host_resize)
    actual = runtime.infer(frame, flip_tta=flip_tta)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape == frame.shape[:2] and a.dtype == np.float32
        assert np.abs(a - e).mean() / np.abs(e).mean() < 2e-3  # a few input pixels one grey level apart
