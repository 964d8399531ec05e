"""With/without DGR on the same weights: a copy of the model whose DGR modules pass their input through.

DGR is residual (x + f(x)), so skipping f is exactly "the network without DGR" for these weights.
A model whose DGR modules were never trained has f = 0 (zero-initialised projection): comparing
it with its bypassed copy would show nothing, so `trained_dgr_modules` reports only modules that
have moved away from zero.
"""
from __future__ import annotations

import copy

from torch import nn

from urcdc_model.models.dgr import DepthGradientRefinement


def dgr_modules(model: nn.Module) -> dict[str, DepthGradientRefinement]:
    return {name: m for name, m in model.named_modules() if isinstance(m, DepthGradientRefinement)}


def trained_dgr_modules(model: nn.Module) -> list[str]:
    """Names of DGR modules whose output projection is not all zeros (i.e. that change the features)."""
    return [
        name for name, m in dgr_modules(model).items()
        if m.proj.weight.abs().max().item() > 0 or m.proj.bias.abs().max().item() > 0
    ]


def _pass_input_through(module: nn.Module, inputs: tuple, output):
    return inputs[0]


def without_dgr(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in which every DGR module returns its input unchanged."""
    bypassed = copy.deepcopy(model)
    for module in dgr_modules(bypassed).values():
        module.register_forward_hook(_pass_input_through)
    return bypassed.eval()
