"""Sparse-pixel analysis: masks, attribution on hand-built models, continuity metrics, the CLI."""
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from urcdc_model.analysis import (
    depth_gradient_errors,
    edge_aware_smoothness,
    input_gradient_attribution,
    parse_branches,
    sample_targets,
    sparse_keep_mask,
    sparse_response,
    sparsify,
    topk_distance,
    uniform_reference,
)
from urcdc_model.analysis.inputs import load_image_frames, pair_ground_truth, procedural_frames
from urcdc_model.deploy.geometry import CanonicalCamera
from urcdc_model.models.coupling import CouplingUnit

LOCAL_RADIUS = 2  # the hand-built CNN branch sees a 5x5 window


class GlobalLocalModel(nn.Module):
    """'transformer' depth depends only on the image mean (global); 'cnn' depth at a pixel only on
    the 5x5 window of its own input around it (local)."""

    def forward(self, image, image_cnn=None):
        image_cnn = image if image_cnn is None else image_cnn
        height, width = image.shape[-2:]
        global_depth = 1.0 + 10.0 * torch.sigmoid(image.mean(dim=(1, 2, 3), keepdim=True)).expand(-1, 1, height, width)
        window = 2 * LOCAL_RADIUS + 1
        local = F.avg_pool2d(image_cnn.sum(dim=1, keepdim=True), window, stride=1, padding=LOCAL_RADIUS)
        return {"depth": global_depth, "depth_cnn": 1.0 + 10.0 * torch.sigmoid(local)}


class TinyCoupledBackbone(nn.Module):
    """A 7x7 conv as 'Swin', a 3x3 conv as CNN, joined by a real coupling unit (detached like the model)."""

    def __init__(self, detach: bool):
        super().__init__()
        self.detach = detach
        self.swin = nn.Conv2d(3, 4, 7, padding=3)
        self.cnn = nn.Conv2d(3, 2, 3, padding=1)
        self.fusion1 = CouplingUnit(2, 4, skip_prob=0.0)

    def forward(self, x, x_cnn=None):
        feats = [self.swin(x)]
        swin_for_cnn = feats[0].detach() if self.detach else feats[0]
        return feats, [self.fusion1(self.cnn(x if x_cnn is None else x_cnn), swin_for_cnn)]


class TinyCoupledModel(nn.Module):
    def __init__(self, detach: bool = True):
        super().__init__()
        self.backbone = TinyCoupledBackbone(detach)

    def forward(self, image, image_cnn=None):
        feats, cnn_feats = self.backbone(image, image_cnn)
        return {"depth": 1 + torch.sigmoid(feats[0].mean(1, keepdim=True)),
                "depth_cnn": 1 + torch.sigmoid(cnn_feats[0].mean(1, keepdim=True))}


def test_cnn_attribution_includes_the_detached_coupling_path():
    torch.manual_seed(0)
    detached = TinyCoupledModel(detach=True).eval()
    attached = TinyCoupledModel(detach=False).eval()
    attached.load_state_dict(detached.state_dict())
    image = torch.randn(1, 3, 24, 32)
    targets = np.array([[8, 10], [15, 20]])
    result = input_gradient_attribution(detached, image, targets, ["transformer", "cnn"])["cnn"]
    # reference: plain autograd on the undetached twin, one picture feeding both branches
    reference = []
    for y, x in targets:
        picture = image.clone().requires_grad_(True)
        attached(picture)["depth_cnn"][0, 0, y, x].backward()
        reference.append(picture.grad.abs().sum(dim=1)[0].numpy())
    np.testing.assert_allclose(result.total, np.stack(reference), rtol=1e-4, atol=1e-7)
    assert result.coupling.sum() > 0 and result.own_input.sum() > 0
    # the coupling path reaches further than the CNN's own 3x3 / 3x3 chain (radius 2)
    y, x = targets[0]
    far = np.abs(np.argwhere(result.coupling[0] > 0) - [y, x]).max()
    assert far > 2 and np.abs(np.argwhere(result.own_input[0] > 0) - [y, x]).max() <= 2


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.37, 1.0])
def test_sparse_mask_keeps_requested_fraction(fraction):
    mask = sparse_keep_mask(48, 80, fraction, np.random.default_rng(0))
    assert mask.shape == (48, 80) and mask.dtype == bool
    assert mask.sum() == round(fraction * 48 * 80)


def test_sparse_masks_differ_between_draws_and_reject_bad_fraction():
    rng = np.random.default_rng(0)
    assert not np.array_equal(sparse_keep_mask(20, 20, 0.1, rng), sparse_keep_mask(20, 20, 0.1, rng))
    with pytest.raises(ValueError, match="keep_fraction"):
        sparse_keep_mask(4, 4, 0.0, rng)


def test_sparsify_sets_dropped_pixels_to_the_normalised_mean():
    image = torch.randn(1, 3, 10, 12)
    mask = sparse_keep_mask(10, 12, 0.25, np.random.default_rng(1))
    sparse = sparsify(image, mask)
    assert torch.all(sparse[..., ~torch.from_numpy(mask)] == 0)
    assert torch.equal(sparse[..., torch.from_numpy(mask)], image[..., torch.from_numpy(mask)])


def test_sparse_response_is_exact_at_full_image_and_degrades_when_sparse():
    torch.manual_seed(0)
    images = [torch.randn(1, 3, 24, 40) + 1.0 for _ in range(2)]
    gt = [np.full((24, 40), 5.0, np.float32), None]
    response = sparse_response(GlobalLocalModel(), images, ["transformer", "cnn"], keep_fractions=(0.05, 1.0),
                               gt_depths_m=gt, masks_per_fraction=2)
    for branch in ("transformer", "cnn"):
        low, full = response.vs_full[branch]
        assert full == 0.0
        assert low > 0.05
    assert response.vs_gt is not None and all(np.isfinite(response.vs_gt["cnn"]))


def test_local_branch_attribution_stays_in_its_window():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 32, 48)
    targets = np.array([[10, 12], [20, 30], [16, 40]])
    both = input_gradient_attribution(GlobalLocalModel(), image, targets, ["transformer", "cnn"])
    attribution = both["cnn"]
    # one batched pass for both branches: the rows of one branch must not leak into the other's
    assert (both["transformer"].total > 0).all()
    assert attribution.total.shape == (3, 32, 48)
    for (y, x), amap in zip(targets, attribution.total):
        support = np.argwhere(amap > 0)
        assert len(support) == (2 * LOCAL_RADIUS + 1) ** 2
        assert np.abs(support - [y, x]).max() == LOCAL_RADIUS
        stats = topk_distance(amap, (y, x), top_k=9)
        assert stats["topk_mean_px"] <= LOCAL_RADIUS * np.sqrt(2)
        assert stats["r90_px"] <= LOCAL_RADIUS * np.sqrt(2)
    # the local branch reads only its own input, none of it through the Transformer's
    np.testing.assert_allclose(attribution.own_input, attribution.total)


def test_global_branch_attribution_spreads_like_uniform():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 32, 48)
    targets = np.array([[10, 12], [20, 30]])
    attribution = input_gradient_attribution(GlobalLocalModel(), image, targets, ["transformer"])["transformer"]
    assert attribution.own_input is None
    for target, amap in zip(targets, attribution.total):
        stats, uniform = topk_distance(amap, target, top_k=50), uniform_reference(32, 48, target)
        assert stats["r50_px"] == pytest.approx(uniform["r50_px"], rel=0.05)
        assert stats["r90_px"] > 4 * LOCAL_RADIUS


def test_targets_avoid_border_and_prefer_valid_gt():
    valid = np.zeros((40, 60), bool)
    valid[20:25, 30:35] = True
    targets = sample_targets(40, 60, 5, np.random.default_rng(0), valid=valid)
    assert len(targets) == 5 and valid[targets[:, 0], targets[:, 1]].all()
    targets = sample_targets(40, 60, 20, np.random.default_rng(0))
    assert targets[:, 0].min() >= 4 and targets[:, 1].max() < 54


def test_continuity_is_zero_on_a_perfect_prediction_with_gt_holes():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2.0, 40.0, (30, 50)).astype(np.float32)
    gt[rng.random((30, 50)) < 0.3] = 0.0  # holes, as in LiDAR GT
    pred = np.where(gt > 0, gt, 123.0)  # anything where there is no GT
    errors = depth_gradient_errors(pred, gt)
    for key in ("grad1_m_per_px", "grad2_m_per_px2", "grad1_log", "grad2_log"):
        assert errors[key] == pytest.approx(0.0, abs=1e-9)
    assert errors["num_grad1_pairs"] > 0


def test_continuity_separates_offset_scale_and_a_blurred_edge():
    gt = np.full((20, 40), 10.0)
    gt[:, 20:] = 30.0
    assert depth_gradient_errors(gt + 2.0, gt)["grad1_m_per_px"] == pytest.approx(0.0)      # offset: metres unaffected
    assert depth_gradient_errors(gt * 1.5, gt)["grad1_log"] == pytest.approx(0.0, abs=1e-12)  # scale: log unaffected
    blurred = cv2.blur(gt, (5, 1), borderType=cv2.BORDER_REPLICATE)
    errors = depth_gradient_errors(blurred, gt)
    # per row the 20 m step becomes five 4 m steps: |4 - 20| + 4 * 4 = 32 m over 39 x-pairs; y-pairs are exact
    assert errors["grad1_m_per_px"] == pytest.approx(20 * 32 / (20 * 39 + 19 * 40))
    assert errors["grad2_m_per_px2"] > 0.3


def test_edge_aware_smoothness():
    rgb = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    assert edge_aware_smoothness(np.full((16, 24), 7.0), rgb) == 0.0
    noisy = 5.0 + np.random.default_rng(1).random((16, 24))
    assert edge_aware_smoothness(noisy, rgb) > 0.0


def test_branch_names_are_validated():
    assert parse_branches("cnn, transformer") == ["cnn", "transformer"]
    with pytest.raises(ValueError, match="--branches"):
        parse_branches("swin")


def test_gt_pairs_by_name_or_frame_number(tmp_path):
    images = [tmp_path / "rgb_00050.jpg", tmp_path / "0000000005.png", tmp_path / "other.png"]
    gt = [tmp_path / "sync_depth_00050.png", tmp_path / "0000000005.png"]
    assert pair_ground_truth(images, gt) == [gt[0], gt[1], None]


def test_loads_real_kitti_frames_with_gt(shared_data):
    root = shared_data / "kitti_depth_annotated"
    frames = load_image_frames([root / "rgb"], [root / "depth"], height=88, width=288)
    assert len(frames) == 3
    for frame in frames:
        assert frame.rgb.shape == (88, 288, 3) and frame.depth_m.shape == (88, 288)
        valid = frame.depth_m[frame.depth_m > 0]
        assert 0.05 < valid.size / frame.depth_m.size < 0.5  # KITTI annotated GT is semi-dense
        assert 1.0 < valid.min() and valid.max() < 90.0     # metres: value / 256 from intrinsics.json


def test_real_frames_take_the_deployment_input_path(shared_data):
    """Images reach the network through the runtime's plan for their camera (intrinsics.json), GT with them."""
    from urcdc_model.data.base import read_depth_png
    from urcdc_model.deploy.geometry import plan_input
    from urcdc_model.preprocessing import read_rgb

    root = shared_data / "kitti_depth_annotated"
    meta = json.loads((root / "intrinsics.json").read_text())
    k = np.array([[meta["fx"], 0, meta["cx"]], [0, meta["fy"], meta["cy"]], [0, 0, 1]])
    canonical = CanonicalCamera(721.5377 * 320 / 1242, (96, 320))      # the default model's
    frame = load_image_frames([root / "rgb" / "0000000005.png"], [root / "depth"], 96, 320, canonical=canonical)[0]
    rgb = read_rgb(root / "rgb" / "0000000005.png")
    gt_m = read_depth_png(root / "depth" / "0000000005.png", 256.0)
    plan = plan_input(rgb.shape[:2], canonical, k, network_hw=(96, 320))
    assert (frame.plan.resized_hw, frame.plan.pad_tlbr) == (plan.resized_hw, plan.pad_tlbr)
    np.testing.assert_array_equal(frame.plan.intrinsics, k)
    assert not plan.fallback and plan.resized_hw[1] / plan.resized_hw[0] == pytest.approx(1242 / 375, rel=0.02)
    np.testing.assert_array_equal(frame.rgb, plan.image_to_network(rgb))
    np.testing.assert_array_equal(frame.depth_m, plan.depth_to_network(gt_m))
    # KITTI's focal at 1242 px is 707 px here, not the canonical 721.5: the network's metres differ by that
    assert plan.depth_scale == pytest.approx(707.0493 / 721.5377, rel=0.01)


def test_procedural_frames_go_through_the_plan_of_their_rendered_camera():
    from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame

    rendered = render_frame(HELD_OUT_SEED, "street", 48, 160)
    same_camera = procedural_frames(1, 48, 160)[0]        # the default canonical camera is the rendered one
    np.testing.assert_array_equal(same_camera.rgb, rendered.rgb)
    np.testing.assert_array_equal(same_camera.depth_m, rendered.depth_m)
    # a model whose canonical focal is twice this camera's: at a pinned 48x160 the frame cannot be enlarged
    # to the canonical focal, so the network sees half its focal and must answer twice the depth
    canonical = CanonicalCamera(2 * rendered.intrinsics[0, 0], (48, 160))
    wide = procedural_frames(1, 48, 160, canonical=canonical)[0]
    assert wide.plan.resized_hw == (48, 160) and wide.plan.depth_scale == pytest.approx(0.5)
    np.testing.assert_allclose(wide.depth_m, rendered.depth_m * 2.0, rtol=1e-6)
    # rendered at 96x320 the dataset's camera has that canonical focal: the identity again
    assert procedural_frames(1, 96, 320, canonical=canonical)[0].plan.depth_scale == pytest.approx(1.0)


def test_without_dgr_bypasses_only_trained_refinement():
    from urcdc_model.analysis.dgr_variants import trained_dgr_modules, without_dgr
    from urcdc_model.models.dgr import DepthGradientRefinement

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), DepthGradientRefinement(4)).eval()
    image = torch.randn(1, 3, 8, 8)
    assert trained_dgr_modules(model) == []  # zero-initialised: the identity, nothing to compare
    with torch.no_grad():
        model[1].proj.weight.normal_()
    assert trained_dgr_modules(model) == ["1"]
    bypassed = without_dgr(model)
    with torch.no_grad():
        assert torch.equal(bypassed(image), model[0](image))
        assert not torch.equal(model(image), model[0](image))  # the original keeps its DGR


def test_cli_writes_report_with_dgr_comparison(tmp_path):
    from urcdc_model.analysis.__main__ import main
    from urcdc_model.checkpoints import save_model
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = ModelConfig.from_dict({**ModelConfig.from_name("nano").to_dict(), "dgr_positions": ["crf0"]})
    model = URCDCDepth(cfg).eval()
    with torch.no_grad():
        model.dgr["crf0"].proj.weight.normal_(std=0.1)  # stands in for trained DGR
    checkpoint = save_model(tmp_path / "tiny.safetensors", model, cfg, meta={"input_height": 32, "input_width": 96})
    other_run = save_model(tmp_path / "run" / "model.safetensors", URCDCDepth(ModelConfig.from_name("nano")),
                             ModelConfig.from_name("nano"))
    output = tmp_path / "report"
    # image files + GT pairing are covered above; one procedural frame (exact GT) keeps this fast
    assert main(["--checkpoint", str(checkpoint), "--procedural", "1", "--output", str(output),
                 "--keep-fractions", "0.05,1", "--masks-per-fraction", "1", "--targets", "1",
                 "--compare-checkpoints", str(other_run)]) == 0
    numbers = json.loads((output / "report.json").read_text())
    assert [(f["group"], f["height"], f["width"]) for f in numbers["frames"]] == [("procedural", 32, 96)]
    assert numbers["frames"][0]["gt_valid_fraction"] > 0.3
    assert numbers["continuity_variants"] == ["tiny", "tiny without DGR", "run"]
    continuity = numbers["continuity"]["procedural"]
    assert set(continuity) == {"tiny/transformer", "tiny/cnn", "tiny without DGR/transformer", "run/transformer",
                               "run/cnn"}
    assert continuity["tiny/transformer"]["grad1_log"] != continuity["tiny without DGR/transformer"]["grad1_log"]
    assert set(numbers["attribution"]["procedural"]["branches"]) == {"transformer", "cnn"}
    assert numbers["sparse_response"]["procedural"]["abs_rel_vs_full_prediction"]["cnn"][1] == 0.0
    report = (output / "report.md").read_text()
    for name in numbers["figures"].values():
        assert (output / name).stat().st_size > 1000 and f"({name})" in report
    assert "trained DGR modules (dgr.crf0)" in report


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    from urcdc_model.analysis.__main__ import main

    assert main(["--checkpoint", "default", "--images", str(tmp_path / "missing"), "--output", str(tmp_path)]) == 1
    assert "missing: no such file or directory" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(["--checkpoint", "default", "--output", str(tmp_path)])  # nothing to analyse
    with pytest.raises(SystemExit):
        main(["--checkpoint", "default", "--procedural", "1", "--output", str(tmp_path), "--branches", "swin"])


def test_dgr_probe_trains_only_the_refinement():
    from urcdc_model.analysis.dgr_probe import add_dgr, fit_dgr
    from urcdc_model.analysis.dgr_variants import trained_dgr_modules, without_dgr
    from urcdc_model.models import build_model

    torch.manual_seed(0)
    base = build_model("nano", with_cnn=False).eval()
    probe = add_dgr(base, ("crf0",))
    image = torch.randn(1, 3, 32, 96)
    with torch.no_grad():
        assert torch.equal(probe(image)["depth"], base(image)["depth"])  # zero-initialised: starts as the base
    losses = fit_dgr(probe, steps=2, batch_size=2, learning_rate=1e-2, num_scenes=2, height=32, width=96,
                     log=lambda message: None)
    assert len(losses) == 2 and trained_dgr_modules(probe) == ["dgr.crf0"]
    base_state = base.state_dict()
    for key, value in probe.state_dict().items():
        if not key.startswith("dgr."):
            assert torch.equal(value, base_state[key]), key  # the network under the probe stays frozen
    with torch.no_grad():
        assert torch.equal(without_dgr(probe)(image)["depth"], base(image)["depth"])
        assert not torch.equal(probe(image)["depth"], base(image)["depth"])
