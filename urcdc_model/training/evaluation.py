"""Evaluation of both branches: per-image standard depth metrics on a dataset, and their means."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from urcdc_model.inference import flip_blend
from urcdc_model.metrics import compute_depth_metrics

BRANCH_OUTPUTS = {"transformer": "depth", "cnn": "depth_cnn"}


@torch.no_grad()
def per_image_metrics(model: nn.Module, dataset: Dataset, device: torch.device, max_depth_m: float,
                      dataset_name: str = "synthetic", flip_tta: bool = True, batch_size: int = 4
                      ) -> dict[str, list[dict[str, float]]]:
    """{"transformer": [metrics of image 0, 1, …], "cnn": […] (two-branch models only)}.

    Scored as `urcdc_model.metrics.compute_depth_metrics` does for `dataset_name` (official clamping,
    depth range and crop); with `flip_tta` both branches get the official flip blend.
    """
    was_training = model.training
    model.eval()
    results: dict[str, list[dict[str, float]]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        image = batch["image"].to(device)
        depth_gt = batch["depth"].numpy()
        out = model(image)
        if flip_tta:
            flipped = model(torch.flip(image, [3]))
            out = {key: flip_blend(out[key], flipped[key]) for key in out}
        for branch, key in BRANCH_OUTPUTS.items():
            if key not in out:
                continue
            pred = out[key].float().cpu().numpy()
            for i in range(pred.shape[0]):
                results.setdefault(branch, []).append(compute_depth_metrics(
                    depth_gt[i, 0], pred[i, 0], dataset=dataset_name, max_depth_m=max_depth_m))
    model.train(was_training)
    return results


def mean_metrics(per_image: list[dict[str, float]]) -> dict[str, float]:
    return {name: sum(m[name] for m in per_image) / len(per_image) for name in per_image[0]}


def evaluate_branches(model: nn.Module, dataset: Dataset, device: torch.device, max_depth_m: float,
                      dataset_name: str = "synthetic", flip_tta: bool = True, batch_size: int = 4
                      ) -> dict[str, float]:
    """Mean metrics: `abs_rel`, … for the Transformer branch, `cnn/abs_rel`, … for the CNN branch."""
    results = per_image_metrics(model, dataset, device, max_depth_m, dataset_name, flip_tta, batch_size)
    means = {}
    for branch, per_image in results.items():
        prefix = "" if branch == "transformer" else f"{branch}/"
        means.update({prefix + name: value for name, value in mean_metrics(per_image).items()})
    return means
