"""Sparse-pixel analysis of URCDC-Depth's Transformer and CNN branches.

After Yao et al., "Improving Depth Gradient Continuity in Transformers" (BMVC 2024): how each
branch responds when only a sparse set of pixels is kept, how far from a pixel its depth draws
evidence (input-gradient attribution), and how continuous its depth gradients are against GT,
with and without DGR. CLI: `python -m urcdc_model.analysis --help`.
"""
from .attribution import (
    input_gradient_attribution,
    radial_mass_profile,
    sample_targets,
    topk_distance,
    uniform_reference,
)
from .branches import BRANCH_DEPTH_KEYS, parse_branches, predict_branches
from .continuity import depth_gradient_errors, edge_aware_smoothness, gradient_magnitude
from .sparse import DEFAULT_KEEP_FRACTIONS, sparse_keep_mask, sparse_response, sparsify

__all__ = [
    "BRANCH_DEPTH_KEYS",
    "DEFAULT_KEEP_FRACTIONS",
    "depth_gradient_errors",
    "edge_aware_smoothness",
    "gradient_magnitude",
    "input_gradient_attribution",
    "parse_branches",
    "predict_branches",
    "radial_mass_profile",
    "sample_targets",
    "sparse_keep_mask",
    "sparse_response",
    "sparsify",
    "topk_distance",
    "uniform_reference",
]
