"""Losses of URCDC-Depth (Shao et al., 2023) and an entropic optimal-transport depth loss.

- `silog_loss`: scale-invariant log loss of BTS/NeWCRFs, 10·sqrt(mean(g²) − λ·mean(g)²).
- `confidence_target` / `confidence_loss`: the uncertainty-rectification target
  c = exp(−5·|d − d̂| / (d + d̂)) and the 0.5·L1 loss that trains the confidence heads.
- `distillation_loss`: L_{A←B} = 0.1 · Σ w·|d̂_A − sg(d̂_B)| / Σ w with w = m·c_B.
- `URCDCLoss`: the full objective, with the official alternating schedule (even steps: SILog of
  both branches + confidence losses; odd steps: the two distillation terms) or summing.
- `optimal_transport_loss`: depth maps as mass distributions over a coarse pixel grid, compared by
  log-domain entropic Sinkhorn with squared Euclidean pixel cost (differentiable).

Beyond the paper (flag `distill_unlabelled`, off by default): on pixels without ground truth the
distillation weight is the teacher's *predicted* confidence instead of nothing, so sparse-GT datasets
(KITTI: ~20 % of pixels) also distil where no label exists.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-7


def silog_loss(depth_pred: Tensor, depth_gt: Tensor, valid_mask: Tensor, variance_focus: float = 0.85) -> Tensor:
    """Scale-invariant log loss over the valid pixels (any shape, masks broadcast to the depth shape)."""
    valid_mask = valid_mask.to(torch.bool)
    if not bool(valid_mask.any()):
        # Nothing supervised in this batch: a zero that keeps the graph connected.
        return depth_pred.sum() * 0.0
    log_diff = torch.log(depth_pred[valid_mask].clamp_min(_EPS)) - torch.log(depth_gt[valid_mask])
    variance = (log_diff**2).mean() - variance_focus * log_diff.mean() ** 2
    # clamp: rounding can make the variance a hair negative for a perfect prediction; sqrt'(0) = inf
    return 10.0 * torch.sqrt(variance.clamp_min(1e-12))


def confidence_target(depth_pred: Tensor, depth_gt: Tensor) -> Tensor:
    """c = exp(−5·|d − d̂|/(d + d̂)) in (0, 1]; 1 for a perfect prediction. Never carries gradient."""
    depth_pred = depth_pred.detach()
    return torch.exp(-5.0 * torch.abs(depth_gt - depth_pred) / (depth_gt + depth_pred + _EPS))


def confidence_loss(confidence_pred: Tensor, target: Tensor, valid_mask: Tensor, weight: float = 0.5) -> Tensor:
    """weight · mean |ĉ − c| over valid pixels (the official code uses weight 0.5)."""
    valid_mask = valid_mask.to(torch.bool)
    if not bool(valid_mask.any()):
        return confidence_pred.sum() * 0.0
    return weight * torch.abs(target.detach()[valid_mask] - confidence_pred[valid_mask]).mean()


def distillation_loss(student_depth: Tensor, teacher_depth: Tensor, pixel_weight: Tensor,
                      weight: float = 0.1) -> Tensor:
    """weight · Σ w·|d̂_student − sg(d̂_teacher)| / Σ w. `pixel_weight` (mask × confidence) is detached."""
    pixel_weight = pixel_weight.detach().to(student_depth.dtype)
    abs_diff = torch.abs(student_depth - teacher_depth.detach())
    return weight * (abs_diff * pixel_weight).sum() / (pixel_weight.sum() + _EPS)


# ---------------------------------------------------------------------------------------------
# Optimal transport


def _pixel_grid_cost(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Squared Euclidean distance between cell centres, coordinates divided by max(height, width)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    points = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1) / max(height, width)
    return torch.cdist(points, points) ** 2


def _sinkhorn_step(log_a: Tensor, log_b: Tensor, neg_cost_over_eps: Tensor, g_over_eps: Tensor,
                   epsilon: float) -> tuple[Tensor, Tensor]:
    """One log-domain Sinkhorn update of both potentials (returned divided by ε)."""
    f_over_eps = -torch.logsumexp(neg_cost_over_eps + (log_b + g_over_eps).unsqueeze(-2), dim=-1)
    g_over_eps = -torch.logsumexp(neg_cost_over_eps + (log_a + f_over_eps).unsqueeze(-1), dim=-2)
    return f_over_eps, g_over_eps


def sinkhorn_cost(a: Tensor, b: Tensor, cost: Tensor, epsilon: float = 0.01, num_iters: int = 100) -> Tensor:
    """Entropic OT value between histograms `a` (B,N) and `b` (B,M) for `cost` (N,M), per batch item.

    Log-domain Sinkhorn so small ε does not underflow. The iterations run without autograd; one
    final differentiable update gives the dual value ⟨f, a⟩ + ⟨g, b⟩, whose gradient w.r.t. the
    histograms is the converged potential (envelope theorem) — exact gradients without storing
    `num_iters` copies of the B·N·M kernel. Converges to the exact (unregularised) OT as ε → 0.
    """
    if a.dim() == 1:
        return sinkhorn_cost(a[None], b[None], cost, epsilon, num_iters)[0]
    if epsilon <= 0:
        raise ValueError(f"sinkhorn_cost: epsilon must be > 0, got {epsilon}")
    log_a = torch.log(a.clamp_min(1e-30))
    log_b = torch.log(b.clamp_min(1e-30))
    neg_cost_over_eps = -cost / epsilon
    with torch.no_grad():
        g_over_eps = torch.zeros_like(b)
        for _ in range(num_iters):
            _, g_over_eps = _sinkhorn_step(log_a, log_b, neg_cost_over_eps, g_over_eps, epsilon)
    f_over_eps, g_over_eps = _sinkhorn_step(log_a, log_b, neg_cost_over_eps, g_over_eps.detach(), epsilon)
    return epsilon * ((f_over_eps * a).sum(-1) + (g_over_eps * b).sum(-1))


def depth_to_histogram(depth_m: Tensor, valid_mask: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """B,1,H,W depth → B,(h·w) probability mass: depth summed per grid cell over valid pixels, normalised."""
    mass = F.adaptive_avg_pool2d(depth_m * valid_mask.to(depth_m.dtype), grid_hw).flatten(1)
    return mass / mass.sum(dim=1, keepdim=True).clamp_min(_EPS)


def optimal_transport_loss(depth_pred: Tensor, depth_gt: Tensor, valid_mask: Tensor,
                           grid_hw: tuple[int, int] = (8, 24), epsilon: float = 0.01,
                           num_iters: int = 50, debias: bool = True) -> Tensor:
    """Mean OT discrepancy between predicted and GT depth mass on a `grid_hw` grid.

    Both maps use the same valid mask, so the loss compares *where* depth mass sits, not the overall
    scale (SILog handles that). With `debias` it is the Sinkhorn divergence
    W_ε(p, g) − ½W_ε(p, p) − ½W_ε(g, g) (Feydy et al. 2019): zero for a perfect prediction, where plain
    W_ε would keep an entropic offset of up to ε·log(cells) and pull towards a blurred map.
    Images whose mask is empty contribute zero.
    """
    valid_mask = valid_mask.to(depth_pred.dtype)
    has_gt = valid_mask.flatten(1).sum(1) > 0
    if not bool(has_gt.any()):
        return depth_pred.sum() * 0.0
    pred_hist = depth_to_histogram(depth_pred[has_gt].float(), valid_mask[has_gt].float(), grid_hw)
    gt_hist = depth_to_histogram(depth_gt[has_gt].float(), valid_mask[has_gt].float(), grid_hw)
    cost = _pixel_grid_cost(*grid_hw, device=depth_pred.device, dtype=torch.float32)
    value = sinkhorn_cost(pred_hist, gt_hist, cost, epsilon, num_iters)
    if debias:
        with torch.no_grad():
            gt_self = sinkhorn_cost(gt_hist, gt_hist, cost, epsilon, num_iters)
        value = value - 0.5 * sinkhorn_cost(pred_hist, pred_hist, cost, epsilon, num_iters) - 0.5 * gt_self
    return value.mean()


# ---------------------------------------------------------------------------------------------
# The URCDC objective


@dataclass
class LossConfig:
    """Weights and switches of the URCDC objective (YAML section `loss`)."""

    schedule: str = "alternate"        # "alternate" (official: even steps supervised, odd distil) | "sum"
    variance_focus: float = 0.85       # λ of SILog
    min_depth_gt_m: float = 1.0        # pixels with GT above this are supervised (official: 1.0 KITTI, 0.1 NYU)
    confidence_weight: float = 0.5
    distill_weight: float = 0.1
    distill_unlabelled: bool = False   # beyond the paper: distil on GT-less pixels weighted by predicted confidence
    ot_weight: float = 0.0             # optimal-transport loss on the Transformer branch (0 = off)
    ot_grid_hw: tuple[int, int] = (8, 24)
    ot_epsilon: float = 0.01
    ot_iters: int = 50

    def __post_init__(self):
        if self.schedule not in ("alternate", "sum"):
            raise ValueError(f"loss.schedule: expected 'alternate' or 'sum', got {self.schedule!r}")
        self.ot_grid_hw = tuple(int(v) for v in self.ot_grid_hw)
        if len(self.ot_grid_hw) != 2:
            raise ValueError(f"loss.ot_grid_hw: expected [height, width], got {self.ot_grid_hw!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "LossConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"loss: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["ot_grid_hw"] = list(self.ot_grid_hw)
        return values


class URCDCLoss:
    """The URCDC objective for one batch; `__call__` returns a dict of scalar tensors with key `loss`.

    `outputs` is the model's output dict (`depth`, `confidence` and, with the CNN branch,
    `depth_cnn`, `confidence_cnn`). Without the CNN branch only SILog (+ confidence, + OT) applies
    and every step is supervised.
    """

    def __init__(self, config: LossConfig):
        self.config = config

    def is_distillation_step(self, step: int) -> bool:
        # Official urcdc/train.py: `if step % 2 == 1` → distillation terms only. (It counts steps within
        # the epoch; we count global steps, identical whenever an epoch has an even number of steps.)
        return self.config.schedule == "alternate" and step % 2 == 1

    def __call__(self, outputs: dict, depth_gt: Tensor, step: int) -> dict:
        cfg = self.config
        has_cnn = "depth_cnn" in outputs
        valid_mask = depth_gt > cfg.min_depth_gt_m
        depth_t = outputs["depth"]
        terms: dict[str, Tensor] = {}

        supervised = not self.is_distillation_step(step) or not has_cnn
        distilling = has_cnn and (cfg.schedule == "sum" or self.is_distillation_step(step))

        # Confidence targets need GT; outside the mask they are meaningless and get zero weight.
        target_t = torch.where(valid_mask, confidence_target(depth_t, depth_gt), torch.zeros_like(depth_gt))
        if supervised:
            terms["silog"] = silog_loss(depth_t, depth_gt, valid_mask, cfg.variance_focus)
            terms["confidence"] = confidence_loss(outputs["confidence"], target_t, valid_mask, cfg.confidence_weight)
            if cfg.ot_weight > 0:
                terms["ot"] = cfg.ot_weight * optimal_transport_loss(
                    depth_t, depth_gt, valid_mask, cfg.ot_grid_hw, cfg.ot_epsilon, cfg.ot_iters)
        if has_cnn:
            depth_c = outputs["depth_cnn"]
            target_c = torch.where(valid_mask, confidence_target(depth_c, depth_gt), torch.zeros_like(depth_gt))
            if supervised:
                terms["silog_cnn"] = silog_loss(depth_c, depth_gt, valid_mask, cfg.variance_focus)
                terms["confidence_cnn"] = confidence_loss(
                    outputs["confidence_cnn"], target_c, valid_mask, cfg.confidence_weight)
            if distilling:
                weight_from_cnn = self._distillation_weight(target_c, outputs.get("confidence_cnn"), valid_mask)
                weight_from_t = self._distillation_weight(target_t, outputs.get("confidence"), valid_mask)
                terms["distill_t_from_cnn"] = distillation_loss(depth_t, depth_c, weight_from_cnn, cfg.distill_weight)
                terms["distill_cnn_from_t"] = distillation_loss(depth_c, depth_t, weight_from_t, cfg.distill_weight)

        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms

    def _distillation_weight(self, teacher_target: Tensor, teacher_confidence: Tensor | None,
                             valid_mask: Tensor) -> Tensor:
        """m·c_teacher on GT pixels; with `distill_unlabelled`, the teacher's predicted confidence elsewhere."""
        weight = teacher_target * valid_mask
        if self.config.distill_unlabelled and teacher_confidence is not None:
            weight = torch.where(valid_mask, weight, teacher_confidence.detach().clamp(0.0, 1.0))
        return weight.detach()

