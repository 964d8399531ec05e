"""Online evaluation during training: the standard depth metrics of both branches on a held-out set."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from urcdc_model.inference import flip_blend
from urcdc_model.metrics import compute_depth_metrics


@torch.no_grad()
def evaluate_branches(model: nn.Module, dataset: Dataset, device: torch.device, max_depth_m: float,
                      dataset_name: str = "synthetic", flip_tta: bool = True, batch_size: int = 4
                      ) -> dict[str, float]:
    """Mean per-image metrics; keys `abs_rel`, … for the Transformer branch, `cnn/abs_rel`, … for the CNN branch.

    Scored as `urcdc_model.metrics.compute_depth_metrics` does for `dataset_name` (official clamping,
    depth range and crop).
    """
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        image = batch["image"].to(device)
        depth_gt = batch["depth"].numpy()
        out = model(image)
        if flip_tta:
            flipped = model(torch.flip(image, [3]))
            out = {key: flip_blend(out[key], flipped[key]) for key in out}
        for key, prefix in (("depth", ""), ("depth_cnn", "cnn/")):
            if key not in out:
                continue
            pred = out[key].float().cpu().numpy()
            for i in range(pred.shape[0]):
                metrics = compute_depth_metrics(depth_gt[i, 0], pred[i, 0], dataset=dataset_name,
                                                max_depth_m=max_depth_m)
                for name, value in metrics.items():
                    totals[prefix + name] = totals.get(prefix + name, 0.0) + float(value)
        count += depth_gt.shape[0]
    model.train(was_training)
    return {name: value / max(count, 1) for name, value in totals.items()}
