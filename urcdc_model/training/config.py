"""The training configuration: one YAML file in config/model/, validated into dataclasses.

Sections: `model` (which network), `data` (which dataset, size, augmentation), `optim` (optimiser,
schedule, batch, steps), `loss` (`urcdc_model.losses.LossConfig`), `log` (how often to log, evaluate,
checkpoint). Unknown keys are errors that name the file and the section, so a typo never silently
falls back to a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from urcdc_model.data.cameras import CameraSampling
from urcdc_model.deploy.geometry import DEFAULT_STRIDE
from urcdc_model.losses import LossConfig
from urcdc_model.models import ModelConfig


def _from_dict(cls, values: dict | None, section: str, source: str):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: section '{section}' has unknown keys {unknown}; known keys: {sorted(known)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: section '{section}': {exc}") from exc


@dataclass
class ModelSection:
    """Which network: a named variant plus overrides of any `ModelConfig` field."""

    variant: str = "nano"                 # tiny07 | base07 | large07 | nano
    max_depth: float = 80.0               # metres (80 KITTI / street, 10 NYU / indoor)
    with_cnn: bool = True                 # train both branches (URCDC); False = Transformer only
    dgr_positions: list[str] = field(default_factory=list)   # e.g. [crf0, crf1]; [] = no DGR
    overrides: dict[str, Any] = field(default_factory=dict)  # other ModelConfig fields
    swin_imagenet_checkpoint: str = ""    # official Swin ImageNet weights to start from ("" = random init)
    init_checkpoint: str = ""             # whole-model weights to fine-tune from (same variant; "" = none)

    def build_config(self) -> ModelConfig:
        base = ModelConfig.from_name(self.variant)
        return dataclasses.replace(base, max_depth=float(self.max_depth), with_cnn=bool(self.with_cnn),
                                   dgr_positions=tuple(self.dgr_positions), **self.overrides)


@dataclass
class DataSection:
    """Which data. `synthetic` renders procedural scenes on the fly (urcdc_model.data.synthetic)."""

    dataset: str = "synthetic"            # synthetic | kitti | nyu
    kind: str = "street"                  # synthetic scene kind: street | indoor
    height: int = 176                     # training input size (also stored in the exported weights)
    width: int = 576
    train_samples: int = 20000            # synthetic: scenes (seeds 0..N-1), each re-augmented every epoch
    val_samples: int = 16                 # synthetic: held-out scenes for the online evaluation
    val_seed: int = 900_000               # below the test seeds of `evaluate` (1 000 000+), above training
    cutflip_probability: float = 0.5
    rotate_max_deg: float = 1.0
    hflip_probability: float = 0.5
    color_probability: float = 0.5
    data_path: str = ""                   # kitti / nyu: image root
    gt_path: str = ""                     # kitti / nyu: ground-truth root
    filenames_file: str = ""              # kitti / nyu: split file (official format)
    filenames_file_eval: str = ""
    use_right: bool = False               # kitti: train on the right camera (image_03) for half the samples
    num_workers: int = 0                  # DataLoader workers per process
    # Camera geometry (urcdc_model.deploy.geometry): "fixed" = frames at height x width, no plan (the
    # KITTI-camera-only default of before); "canonical" = every frame through the inference plan with
    # its own camera (synthetic: KITTI/NYU-like at random render sizes; real data: the split's focal);
    # "random" = synthetic frames from random cameras (urcdc_model.data.cameras), then the plan.
    cameras: str = "fixed"
    canonical_focal_px: float = 0.0       # focal (px) at height x width; 0 = the dataset's camera at that width
    # random cameras (urcdc_model.data.cameras.CameraSampling, whose defaults these are)
    base_camera_fraction: float = CameraSampling.base_camera_fraction   # share from the dataset's own camera
    render_scale_range: list[float] = field(default_factory=lambda: list(CameraSampling.render_scale_range))
    aspect_range: list[float] = field(default_factory=lambda: list(CameraSampling.aspect_range))  # width / height
    window_sizes: list[list[int]] = field(default_factory=list)  # training windows [h, w], one per batch;
    #                                       [] = [[height, width]]; only with cameras canonical / random
    whole_frame_fraction: float = 0.0     # share of batches that are one whole network input, as inference sees it
    whole_frame_padding_px: int = 0       # those whole frames padded by 0..this many more pixels per side
    # where windows are cut: "random", or "centred" on the frame, where the ray embedding
    # (model.overrides.ray_focal_px) puts the principal point, so each patch's ray stays true
    window_placement: str = "random"
    # synthetic street: distance range of the building that ends half the training streets (validation
    # and evaluation scenes keep 50-130 m); nearer ones teach a wall ahead (dead ends, T-junctions)
    cross_building_range_m: list[float] = field(default_factory=lambda: [50.0, 130.0])
    cross_building_probability: float = 0.5   # the share of training streets that building ends
    # training frames shown at a random scale (log-uniform) × the size inference gives them; [1, 1] = off
    network_scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # the plan pads training frames to these multiples (rows, columns); inference's are geometry.DEFAULT_STRIDE
    network_stride: list[int] = field(default_factory=lambda: list(DEFAULT_STRIDE))

    def __post_init__(self):
        if self.dataset not in ("synthetic", "kitti", "nyu"):
            raise ValueError(f"dataset must be synthetic, kitti or nyu, got {self.dataset!r}")
        if self.cameras not in ("fixed", "canonical", "random"):
            raise ValueError(f"cameras must be fixed, canonical or random, got {self.cameras!r}")
        if self.cameras == "random" and self.dataset != "synthetic":
            raise ValueError("cameras: random renders synthetic frames; real data uses 'canonical'")
        if self.canonical_focal_px < 0:
            raise ValueError(f"canonical_focal_px must be >= 0 (0 = default), got {self.canonical_focal_px}")
        for window in self.window_sizes:
            if len(window) != 2 or min(window) < 32 or any(int(v) % 8 for v in window):
                raise ValueError(f"window_sizes entries must be [height, width], multiples of 8 and >= 32, "
                                 f"got {window}")
        if self.window_placement not in ("random", "centred"):
            raise ValueError(f"window_placement must be random or centred, got {self.window_placement!r}")
        if not 0.0 <= self.whole_frame_fraction <= 1.0:
            raise ValueError(f"whole_frame_fraction must be within [0, 1], got {self.whole_frame_fraction}")
        if not 0.0 <= self.cross_building_probability <= 1.0:
            raise ValueError("cross_building_probability must be within [0, 1], "
                             f"got {self.cross_building_probability}")
        if not 0 <= self.whole_frame_padding_px <= 256:
            raise ValueError(f"whole_frame_padding_px must be within [0, 256], got {self.whole_frame_padding_px}")
        for name in ("render_scale_range", "aspect_range", "cross_building_range_m", "network_scale_range"):
            low_high = getattr(self, name)
            if len(low_high) != 2 or not 0 < low_high[0] <= low_high[1]:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high, got {low_high}")
        if len(self.network_stride) != 2 or not all(isinstance(v, int) and 1 <= v <= 64 for v in self.network_stride):
            raise ValueError(f"network_stride must be [rows, columns], each 1..64, got {self.network_stride}")
        # The KITTI/NYU loaders put frames through the plan as inference does, with its default padding.
        if self.dataset != "synthetic":
            for name, neutral in (("network_scale_range", [1.0, 1.0]), ("network_stride", list(DEFAULT_STRIDE))):
                if list(getattr(self, name)) != neutral:
                    raise ValueError(f"{name} applies to synthetic training frames only, not {self.dataset!r}")
        if self.height < 32 or self.width < 32:
            raise ValueError(f"height/width must be >= 32 pixels, got {self.height}x{self.width}")


@dataclass
class OptimSection:
    """Optimiser and schedule (official URCDC: Adam, lr 2e-5 → 2e-6 poly 0.9, batch 4, 50 epochs)."""

    optimizer: str = "adam"               # adam | adamw
    lr: float = 2e-5
    end_lr: float = 2e-6
    poly_power: float = 0.9
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    batch_size: int = 4                   # global batch, split over the torchrun processes
    epochs: int = 50
    total_steps: int | None = None        # overrides epochs when set (as does --max-steps)
    grad_clip_norm: float = 0.0           # 0 = no clipping (the official code does not clip)
    amp: bool = True                      # mixed precision on CUDA (ignored on CPU)
    max_nonfinite_steps: int = 20         # abort after this many consecutive NaN/inf steps
    ray_embed_lr_scale: float = 1.0       # lr multiplier of the ray embedding (model.overrides.ray_focal_px):
    #                                       added at zero to trained weights, it learns nothing at their lr

    def __post_init__(self):
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if self.lr <= 0 or self.end_lr < 0 or self.end_lr > self.lr:
            raise ValueError(f"need 0 <= end_lr <= lr and lr > 0, got lr={self.lr}, end_lr={self.end_lr}")
        if not self.ray_embed_lr_scale > 0:
            raise ValueError(f"ray_embed_lr_scale must be > 0, got {self.ray_embed_lr_scale}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class LogSection:
    """How often (in steps) to log scalars and images, evaluate and checkpoint."""

    log_every: int = 50
    image_every: int = 500
    eval_every: int = 1000                # 0 = only at the end
    checkpoint_every: int = 1000
    eval_flip_tta: bool = True


@dataclass
class TrainConfig:
    name: str = "train"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossConfig = field(default_factory=LossConfig)
    log: LogSection = field(default_factory=LogSection)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        values = dict(values or {})
        sections = {"model": ModelSection, "data": DataSection, "optim": OptimSection,
                    "loss": LossConfig, "log": LogSection}
        unknown = sorted(set(values) - set(sections) - {"name", "seed"})
        if unknown:
            raise ValueError(f"{source}: unknown top-level keys {unknown}; known: name, seed, {sorted(sections)}")
        built = {key: _from_dict(section_cls, values.get(key), key, source) for key, section_cls in sections.items()}
        config = cls(name=str(values.get("name", Path(source).stem)), seed=int(values.get("seed", 0)), **built)
        try:
            config.model.build_config()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: section 'model': {exc}") from exc
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training config not found (see config/model/*.yaml)")
        try:
            values = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping with sections model/data/optim/loss/log")
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "model": dataclasses.asdict(self.model),
                "data": dataclasses.asdict(self.data), "optim": dataclasses.asdict(self.optim),
                "loss": self.loss.to_dict(), "log": dataclasses.asdict(self.log)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
