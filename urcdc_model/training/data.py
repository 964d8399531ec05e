"""Datasets and sampling for the trainer.

Determinism: `SampleSeededDataset` seeds the RNGs around each `__getitem__` from (seed, epoch,
index), so the augmentation of a sample depends only on those three numbers — not on the number of
DataLoader workers, the number of torchrun processes, or whether the run was resumed.
`ResumableDistributedSampler` is torch's DistributedSampler that can start an epoch part-way through.
With `deferred=True` the dataset hands out `DeferredSample`s and `WindowCollate` loads only the samples
a batch uses (a whole-frame batch uses one of them): the same samples, without rendering the others.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, default_collate

from urcdc_model.data.transforms import AugmentConfig
from urcdc_model.deploy.geometry import KITTI_FOCAL_PX, NYU_FOCAL_PX, CanonicalCamera

from .config import DataSection


class SampleSeededDataset(Dataset):
    """Wraps a dataset so sample `index` of epoch `epoch` always sees the same random numbers.

    ``deferred``: `__getitem__` returns a `DeferredSample` that loads on call (for `WindowCollate`)."""

    def __init__(self, dataset: Dataset, seed: int, deferred: bool = False):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0
        self.deferred = deferred

    def set_epoch(self, epoch: int) -> None:
        # DataLoader workers copy the dataset when an epoch's iterator is created, so this propagates.
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if self.deferred:
            return DeferredSample(self, int(index), self.epoch)
        return self.load(int(index), self.epoch)

    def load(self, index: int, epoch: int):
        """Sample ``index`` of ``epoch``, the global RNG states left as they were."""
        sample_seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            np.random.seed(sample_seed)
            random.seed(sample_seed)
            try:
                return self.dataset[index]
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)


class DeferredSample:
    """One sample of a `SampleSeededDataset`, loaded (rendered, augmented) when called."""

    def __init__(self, dataset: SampleSeededDataset, index: int, epoch: int):
        self.dataset, self.index, self.epoch = dataset, index, epoch

    def __call__(self) -> dict:
        return self.dataset.load(self.index, self.epoch)


def _loaded(samples: list) -> list[dict]:
    return [sample() if isinstance(sample, DeferredSample) else sample for sample in samples]


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler whose next epoch can skip its first `start_index` samples (for --resume)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start_index = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start_index:]
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self.start_index


def canonical_camera(data: DataSection) -> CanonicalCamera:
    """The camera whose metric scale the network learns: focal at the training input size.

    Default: the dataset's camera (KITTI for street/kitti, NYU for indoor/nyu) resized to the training
    width, which is what "fixed" training shows the network, so the two modes share one scale."""
    focal_px = data.canonical_focal_px
    if not focal_px:
        indoor = data.dataset == "nyu" or (data.dataset == "synthetic" and data.kind == "indoor")
        focal_px = (NYU_FOCAL_PX / 640.0 if indoor else KITTI_FOCAL_PX / 1242.0) * data.width
    return CanonicalCamera(float(focal_px), (data.height, data.width))


def _window_origin(size: int, window: int, centred: bool = False) -> int:
    """Window start along one axis (the window is never larger than the sample): random, or centred.

    The random draw is made either way, so both placements consume the same random numbers."""
    start = int(torch.randint(0, size - window + 1, ()))
    return (size - window) // 2 if centred else start


def _pad_sample(sample: dict, max_px: int, multiple: int = 8) -> dict:
    """The sample with 0..max_px more pixels per side: images edge-replicated, depth 0 (no label)."""
    top, left, bottom, right = (int(v) for v in torch.randint(0, max_px + 1, (4,)))
    height, width = sample["image"].shape[1:]
    bottom += -(height + top + bottom) % multiple
    right += -(width + left + right) % multiple
    padded = dict(sample)
    for key in ("image", "image_cnn"):
        if key in sample:
            padded[key] = torch.nn.functional.pad(sample[key][None], (left, right, top, bottom), mode="replicate")[0]
    padded["depth"] = torch.nn.functional.pad(sample["depth"], (left, right, top, bottom))
    return padded


class WindowCollate:
    """Batches network-size samples of different sizes: one training window per batch, random place.

    Varying the window between batches shows the network the input sizes and aspect ratios inference
    gives it (the PSP head pools globally, and a network trained only at one size is biased at others).
    The window shrinks to the smallest sample of the batch instead of padding it: inference pads at
    most stride − 1 pixels, so large padded areas would be a kind of input it never sees. Windows of
    more than ``max_batch_pixels`` / batch pixels keep fewer samples (at least one), so a step costs
    about the same at every window size.

    Shrinking to the smallest sample means tall frames are rarely seen whole: a batch-mate from a wide
    camera cuts them to its height. With ``whole_frame_fraction`` that share of batches is the first
    sample alone, uncropped: exactly the network input inference gives for that camera.

    ``whole_frame_padding_px`` > 0 pads those whole frames further, as the inference plan pads (edge
    replication, no labels), by 0..that many pixels per side, to a multiple of 8. The default model's
    scale moves with the padding the plan adds (docs/BENCHMARKS.md, issue 12): this shows it more.

    ``centred`` cuts each window about the sample's centre instead of at a random place. The ray
    embedding (``SwinTransformer(ray_focal_px=...)``) takes the principal point at the input's centre;
    a random window of a tall frame moves it by up to a third of the frame, so the rays the network is
    told are wrong by up to ~10° there, and it learns not to trust them.
    """

    def __init__(self, window_sizes: list[tuple[int, int]], max_batch_pixels: int | None = None,
                 whole_frame_fraction: float = 0.0, whole_frame_padding_px: int = 0, centred: bool = False):
        if not window_sizes:
            raise ValueError("WindowCollate needs at least one window size")
        self.window_sizes = [(int(h), int(w)) for h, w in window_sizes]
        self.max_batch_pixels = max_batch_pixels
        self.whole_frame_fraction = whole_frame_fraction
        self.whole_frame_padding_px = int(whole_frame_padding_px)
        self.centred = bool(centred)

    def __call__(self, samples: list) -> dict:
        """Samples (dicts, or `DeferredSample`s: only those the batch uses are loaded) → one batch."""
        if self.whole_frame_fraction and float(torch.rand(())) < self.whole_frame_fraction:
            sample = _loaded(samples[:1])[0]
            if self.whole_frame_padding_px:
                sample = _pad_sample(sample, self.whole_frame_padding_px)
            return default_collate([sample])
        height, width = self.window_sizes[int(torch.randint(0, len(self.window_sizes), ()))]
        if self.max_batch_pixels:
            samples = samples[:max(1, self.max_batch_pixels // (height * width))]
        samples = _loaded(samples)
        height = min([height] + [sample["image"].shape[1] for sample in samples])
        width = min([width] + [sample["image"].shape[2] for sample in samples])
        batch = []
        for sample in samples:
            top = _window_origin(sample["image"].shape[1], height, self.centred)
            left = _window_origin(sample["image"].shape[2], width, self.centred)
            window = (slice(None), slice(top, top + height), slice(left, left + width))
            batch.append({key: value[window] if key in ("image", "image_cnn", "depth") else value
                          for key, value in sample.items()})
        return default_collate(batch)


def _augment_config(data: DataSection) -> AugmentConfig:
    brightness = (0.9, 1.1) if data.kind == "street" or data.dataset == "kitti" else (0.75, 1.25)
    return AugmentConfig(rotate_max_deg=data.rotate_max_deg, crop_height=None, crop_width=None,
                         cutflip_probability=data.cutflip_probability, hflip_probability=data.hflip_probability,
                         color_probability=data.color_probability, brightness_range=brightness)


def build_datasets(data: DataSection, max_depth_m: float, source: str = "config") -> tuple[Dataset, Dataset]:
    """(training set, online-evaluation set) for the `data` section."""
    if data.dataset == "synthetic":
        from urcdc_model.data.synthetic import HELD_OUT_SEED, SyntheticDepthDataset

        if data.train_samples > data.val_seed or data.val_seed + data.val_samples > HELD_OUT_SEED:
            raise ValueError(f"{source}: data.train_samples / val_seed overlap: training seeds are "
                             f"[0, {data.train_samples}), validation [{data.val_seed}, "
                             f"{data.val_seed + data.val_samples}), test seeds start at {HELD_OUT_SEED}")
        canonical = cameras = None
        if data.cameras != "fixed":
            from urcdc_model.data.cameras import CameraSampling

            canonical = canonical_camera(data)
            cameras = CameraSampling(render_scale_range=tuple(data.render_scale_range),
                                     aspect_range=tuple(data.aspect_range),
                                     base_camera_fraction=1.0 if data.cameras == "canonical"
                                     else data.base_camera_fraction)
        train = SyntheticDepthDataset(data.train_samples, kind=data.kind, height=data.height, width=data.width,
                                      seed=0, train=True, max_depth_m=max_depth_m, augment=_augment_config(data),
                                      canonical=canonical, cameras=cameras,
                                      cross_building_range_m=tuple(data.cross_building_range_m),
                                      cross_building_probability=data.cross_building_probability,
                                      network_scale_range=tuple(data.network_scale_range),
                                      network_stride=tuple(data.network_stride))
        val = SyntheticDepthDataset(data.val_samples, kind=data.kind, height=data.height, width=data.width,
                                    seed=data.val_seed, train=False, max_depth_m=max_depth_m, cache_frames=True,
                                    canonical=canonical, cameras=cameras, network_stride=tuple(data.network_stride))
        return train, val
    return _build_real_datasets(data, source)


def _build_real_datasets(data: DataSection, source: str) -> tuple[Dataset, Dataset]:
    """KITTI / NYU-Depth-v2 through the data package's loaders (official split files)."""
    for key in ("data_path", "gt_path", "filenames_file"):
        if not getattr(data, key):
            raise ValueError(f"{source}: data.{key} is required for dataset '{data.dataset}'")
    try:
        from urcdc_model.data import depth_datasets  # the KITTI/NYU loaders of the data package
    except ImportError as exc:
        raise NotImplementedError(
            f"{source}: dataset '{data.dataset}' needs urcdc_model.data.depth_datasets (KITTI/NYU loaders), "
            f"which this checkout does not have ({exc}); train on 'synthetic' meanwhile") from exc
    return depth_datasets.build_train_eval(data, canonical_camera(data) if data.cameras == "canonical" else None)
