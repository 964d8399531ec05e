"""Build the real-data training and evaluation sets from a training config's ``data`` section."""
from __future__ import annotations

from dataclasses import replace

from urcdc_model.data.base import DepthDataset
from urcdc_model.data.kitti import KittiDepthDataset
from urcdc_model.data.nyu import NyuDepthDataset
from urcdc_model.data.transforms import KITTI_AUGMENT, NYU_AUGMENT
from urcdc_model.deploy.geometry import CanonicalCamera

DATASETS: dict[str, type[DepthDataset]] = {"kitti": KittiDepthDataset, "nyu": NyuDepthDataset}


def build_train_eval(data, canonical: CanonicalCamera | None = None) -> tuple[DepthDataset, DepthDataset]:
    """(train, eval) datasets; ``data`` has dataset, data_path, gt_path, filenames_file(_eval), height,
    width and the augmentation probabilities (urcdc_model.training.config.DataSection); ``canonical``:
    training frames go through the inference plan to this camera (the trainer then crops windows)."""
    if data.dataset not in DATASETS:
        raise ValueError(f"data.dataset must be one of {tuple(DATASETS)} for real data, got {data.dataset!r}")
    official = KITTI_AUGMENT if data.dataset == "kitti" else NYU_AUGMENT
    augment = replace(official, crop_height=data.height, crop_width=data.width,
                      rotate_max_deg=data.rotate_max_deg, cutflip_probability=data.cutflip_probability,
                      hflip_probability=data.hflip_probability, color_probability=data.color_probability)
    dataset_class = DATASETS[data.dataset]
    options = {}
    if getattr(data, "use_right", False):
        if data.dataset != "kitti":
            raise ValueError(f"data.use_right applies to KITTI (stereo) only, not {data.dataset!r}")
        options["use_right"] = True
    if canonical is not None:
        options["canonical"] = canonical
    train = dataset_class(data.data_path, data.gt_path, data.filenames_file, mode="train", augment=augment,
                          **options)
    eval_split = data.filenames_file_eval or data.filenames_file
    evaluation = dataset_class(data.data_path, data.gt_path, eval_split, mode="eval")
    return train, evaluation
