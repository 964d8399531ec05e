"""URCDC losses and the optimal-transport loss on hand-made tensors."""
import math

import numpy as np
import pytest
import torch

from urcdc_model.losses import (
    LossConfig,
    URCDCLoss,
    confidence_loss,
    confidence_target,
    depth_to_histogram,
    distillation_loss,
    optimal_transport_loss,
    silog_loss,
    sinkhorn_cost,
    _pixel_grid_cost,
)


def _depth(seed: int = 0, shape=(2, 1, 8, 10)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 30.0 + 2.0


# --- SILog -------------------------------------------------------------------------------------

def test_silog_is_zero_for_perfect_depth():
    gt = _depth()
    assert silog_loss(gt.clone(), gt, gt > 0).item() == pytest.approx(0.0, abs=1e-4)


def test_silog_scale_behaviour_matches_formula():
    gt = _depth()
    mask = gt > 0
    # A global scale s gives g = log s everywhere: 10·sqrt((1 − λ)·log² s).
    for scale in (0.5, 2.0):
        expected = 10.0 * math.sqrt((1 - 0.85) * math.log(scale) ** 2)
        assert silog_loss(gt * scale, gt, mask).item() == pytest.approx(expected, rel=1e-4)
    # λ = 1 makes it fully scale invariant.
    # (float32 cancellation in mean(g²) − mean(g)² leaves ~1e-3.)
    assert silog_loss(gt * 3.0, gt, mask, variance_focus=1.0).item() == pytest.approx(0.0, abs=1e-2)
    # A non-uniform error is penalised.
    assert silog_loss(gt * _depth(1) / 10.0, gt, mask).item() > 1.0


def test_silog_ignores_invalid_pixels():
    gt = _depth()
    pred = gt.clone()
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[..., :4] = False
    pred[..., :4] = 1000.0  # wrong only where there is no GT
    assert silog_loss(pred, gt, mask).item() == pytest.approx(0.0, abs=1e-4)


# --- confidence --------------------------------------------------------------------------------

def test_confidence_target_range_and_values():
    gt = _depth()
    pred = _depth(1)
    target = confidence_target(pred, gt)
    assert torch.all(target > 0) and torch.all(target <= 1)
    assert torch.allclose(confidence_target(gt, gt), torch.ones_like(gt))
    # |d − d̂|/(d + d̂) = 1/3 for d̂ = 2d → exp(−5/3)
    assert confidence_target(gt * 2, gt)[0, 0, 0, 0].item() == pytest.approx(math.exp(-5 / 3), rel=1e-5)
    # worse prediction → lower confidence
    assert torch.all(confidence_target(gt * 3, gt) < confidence_target(gt * 1.5, gt))


def test_confidence_target_carries_no_gradient():
    pred = _depth(1).requires_grad_()
    assert not confidence_target(pred, _depth()).requires_grad


def test_confidence_loss_is_half_l1_on_valid_pixels():
    target = torch.full((1, 1, 2, 2), 0.8)
    pred = torch.tensor([[[[0.6, 0.8], [1.0, 0.0]]]])
    mask = torch.tensor([[[[True, True], [True, False]]]])
    assert confidence_loss(pred, target, mask).item() == pytest.approx(0.5 * (0.2 + 0.0 + 0.2) / 3, rel=1e-5)


# --- distillation ------------------------------------------------------------------------------

def test_distillation_weighted_mean_of_absolute_difference():
    student = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])
    teacher = torch.tensor([[[[2.0, 2.0, 5.0, 0.0]]]])
    weight = torch.tensor([[[[1.0, 0.5, 0.25, 0.0]]]])  # last pixel: no GT → no say
    expected = 0.1 * (1.0 * 1 + 0.5 * 0 + 0.25 * 2) / (1.0 + 0.5 + 0.25)
    assert distillation_loss(student, teacher, weight).item() == pytest.approx(expected, rel=1e-5)


def test_distillation_gradient_reaches_student_only():
    student = _depth(0).requires_grad_()
    teacher = _depth(1).requires_grad_()
    distillation_loss(student, teacher, torch.ones_like(student)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


# --- the URCDC objective -----------------------------------------------------------------------

def _outputs(requires_grad=True):
    leaves = {
        "depth": _depth(1), "confidence": torch.rand(2, 1, 8, 10),
        "depth_cnn": _depth(2), "confidence_cnn": torch.rand(2, 1, 8, 10),
    }
    return {k: v.requires_grad_(requires_grad) for k, v in leaves.items()}


def test_alternating_schedule_matches_official_parity():
    loss_fn = URCDCLoss(LossConfig())
    gt = _depth()
    even = loss_fn(_outputs(), gt, step=0)
    odd = loss_fn(_outputs(), gt, step=1)
    assert set(even) == {"silog", "confidence", "silog_cnn", "confidence_cnn", "loss"}
    assert set(odd) == {"distill_t_from_cnn", "distill_cnn_from_t", "loss"}
    summed = URCDCLoss(LossConfig(schedule="sum"))(_outputs(), gt, step=1)
    assert set(summed) == set(even) | set(odd)
    parts = sum(v for k, v in summed.items() if k != "loss")
    assert summed["loss"].item() == pytest.approx(parts.item(), rel=1e-6)


def test_gradients_flow_to_students_and_heads_not_to_teachers():
    gt = _depth()
    loss_fn = URCDCLoss(LossConfig())
    # supervised step: both depths and both confidence heads learn
    out = _outputs()
    loss_fn(out, gt, step=0)["loss"].backward()
    assert all(out[k].grad is not None and out[k].grad.abs().sum() > 0 for k in out)
    # distillation step: the depths learn (each as student), confidence heads get nothing
    out = _outputs()
    terms = loss_fn(out, gt, step=1)
    terms["distill_t_from_cnn"].backward()
    assert out["depth"].grad.abs().sum() > 0
    assert out["depth_cnn"].grad is None  # teacher of this term is detached
    assert out["confidence"].grad is None and out["confidence_cnn"].grad is None


def test_distillation_uses_gt_confidence_of_the_teacher():
    gt = _depth()
    out = _outputs(requires_grad=False)
    out["depth_cnn"] = gt.clone()  # perfect CNN teacher: weight 1 everywhere with GT
    terms = URCDCLoss(LossConfig())(out, gt, step=1)
    expected = 0.1 * torch.abs(out["depth"] - gt).mean()
    assert terms["distill_t_from_cnn"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_unlabelled_distillation_flag_uses_predicted_confidence():
    gt = _depth()
    gt[..., 5:] = 0.0  # no GT on the right half
    out = _outputs(requires_grad=False)
    out["confidence_cnn"] = torch.full_like(gt, 0.5)
    official = URCDCLoss(LossConfig())(out, gt, step=1)["distill_t_from_cnn"]
    beyond = URCDCLoss(LossConfig(distill_unlabelled=True))(out, gt, step=1)["distill_t_from_cnn"]
    valid = gt > 1.0
    weight_gt = confidence_target(out["depth_cnn"], gt) * valid
    diff = torch.abs(out["depth"] - out["depth_cnn"])
    assert official.item() == pytest.approx((0.1 * (diff * weight_gt).sum() / weight_gt.sum()).item(), rel=1e-5)
    weight_all = torch.where(valid, weight_gt, torch.full_like(gt, 0.5))
    assert beyond.item() == pytest.approx((0.1 * (diff * weight_all).sum() / weight_all.sum()).item(), rel=1e-5)


def test_single_branch_model_is_always_supervised():
    out = {k: v for k, v in _outputs().items() if not k.endswith("_cnn")}
    terms = URCDCLoss(LossConfig())(out, _depth(), step=1)
    assert set(terms) == {"silog", "confidence", "loss"}


def test_loss_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        LossConfig.from_dict({"shedule": "sum"})
    with pytest.raises(ValueError, match="schedule"):
        LossConfig(schedule="both")


# --- optimal transport -------------------------------------------------------------------------

def test_sinkhorn_converges_to_exact_ot_as_epsilon_shrinks():
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(0)
    cost = _pixel_grid_cost(3, 4, torch.device("cpu"), torch.float64)
    for _ in range(3):
        a = rng.random(12) + 0.05
        b = rng.random(12) + 0.05
        a, b = a / a.sum(), b / b.sum()
        exact = ot.emd2(a, b, cost.numpy())
        gaps = []
        for eps in (0.05, 0.01, 0.002):
            value = sinkhorn_cost(torch.from_numpy(a), torch.from_numpy(b), cost, eps, num_iters=1500).item()
            gaps.append(value - exact)
            # entropic OT (KL to a⊗b) lies in [W0, W0 + ε·log N]
            assert -1e-6 <= gaps[-1] <= eps * math.log(12) + 1e-6
        assert gaps == sorted(gaps, reverse=True)
        assert gaps[-1] < 0.2 * exact


def test_sinkhorn_divergence_is_zero_for_identical_depth():
    depth = _depth()
    mask = depth > 0
    assert abs(optimal_transport_loss(depth, depth.clone(), mask, grid_hw=(4, 5)).item()) < 1e-6


def test_sinkhorn_gradient_matches_finite_differences():
    cost = _pixel_grid_cost(2, 3, torch.device("cpu"), torch.float64)
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(6, generator=gen, dtype=torch.float64) + 0.1
    b = torch.rand(6, generator=gen, dtype=torch.float64) + 0.1
    b = b / b.sum()
    logits = torch.log(a).requires_grad_()

    def value(x):
        return sinkhorn_cost(torch.softmax(x, 0), b, cost, epsilon=0.05, num_iters=500)

    value(logits).backward()
    numeric = torch.zeros(6, dtype=torch.float64)
    for i in range(6):
        step = torch.zeros(6, dtype=torch.float64)
        step[i] = 1e-5
        numeric[i] = (value(logits.detach() + step) - value(logits.detach() - step)) / 2e-5
    assert torch.allclose(logits.grad, numeric, atol=1e-6)


def test_ot_loss_prefers_the_right_layout_and_trains_the_prediction():
    gt = torch.ones(1, 1, 12, 24) * 5.0
    gt[..., :, 12:] = 40.0  # far on the right
    mask = torch.ones_like(gt, dtype=torch.bool)
    swapped = gt.flip(-1)
    loss_right = optimal_transport_loss(gt.clone(), gt, mask, grid_hw=(6, 12))
    loss_wrong = optimal_transport_loss(swapped, gt, mask, grid_hw=(6, 12))
    assert loss_wrong.item() > loss_right.item() + 0.05
    pred = swapped.clone().requires_grad_()
    optimal_transport_loss(pred, gt, mask, grid_hw=(6, 12)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # descending the gradient moves depth mass towards the GT layout
    assert pred.grad[..., :12].mean() > 0 > pred.grad[..., 12:].mean()


def test_depth_histogram_is_a_distribution_over_valid_pixels():
    depth = _depth()
    mask = torch.zeros_like(depth, dtype=torch.bool)
    mask[..., :4, :] = True
    hist = depth_to_histogram(depth, mask, (4, 5))
    assert torch.allclose(hist.sum(1), torch.ones(2))
    assert torch.all(hist.reshape(2, 4, 5)[:, 2:] == 0)
