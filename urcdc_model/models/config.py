"""``ModelConfig``: every hyper-parameter of a URCDC-Depth network, and the named variants.

Official variants (``tiny07``, ``base07``, ``large07``) use the official widths and a DenseNet-161
CNN branch. ``nano`` is ours: the same module types and key layout at small widths with a light
DenseNet, for CPU training, the demo and the node's embedded default model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# DGR insertion points: after each Swin stage output and after each NeWCRF decoder level.
DGR_POSITIONS = ("swin0", "swin1", "swin2", "swin3", "crf3", "crf2", "crf1", "crf0")
UP_MODES = ("bilinear", "mask")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a URCDC-Depth network (JSON-serialisable via ``to_dict``)."""

    name: str = "custom"
    # Swin Transformer backbone
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.3
    ape_grid: tuple[int, ...] = ()        # learned absolute position embedding (rows, cols); () = none
    ray_focal_px: float = 0.0             # > 0: embed each patch's ray direction at this focal (px of the
    #                                       network input; the canonical focal); 0 = none (official)
    mask_window_padding: bool = False     # Swin/NeWCRF windows ignore their zero padding (official: attend to it)
    # PSP head on the last stage
    psp_channels: int = 512
    psp_pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    psp_gn_groups: int = 256
    # NeWCRF decoder, listed from the finest level (crf0) to the coarsest (crf3)
    crf_dims: tuple[int, ...] = (128, 256, 512, 1024)
    crf_num_heads: tuple[int, ...] = (4, 8, 16, 32)
    crf_window_size: int = 7
    # x4 upsampling of the depth head: "bilinear" (official default) or "mask" (the official code's
    # learned convex upsampling: each output pixel a softmax-weighted mix of its 3x3 coarse neighbours)
    up_mode: str = "bilinear"
    # CNN branch (DenseNet features + GLP decoder; decoder width = cnn_init_features)
    cnn_growth_rate: int = 48
    cnn_block_config: tuple[int, ...] = (6, 12, 36, 24)
    cnn_init_features: int = 96
    cnn_bn_size: int = 4
    coupling_skip_prob: float = 0.05
    # Output
    max_depth: float = 80.0
    with_cnn: bool = True
    dgr_positions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("depths", "num_heads", "psp_pool_scales", "crf_dims", "crf_num_heads",
                      "cnn_block_config", "dgr_positions", "ape_grid"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        self.validate()

    @property
    def swin_channels(self) -> tuple[int, ...]:
        """Channels of the four Swin stage outputs."""
        return tuple(self.embed_dim * 2 ** i for i in range(len(self.depths)))

    @property
    def crf_v_dims(self) -> tuple[int, ...]:
        """Message channels entering crf0..crf3: PixelShuffle(2) of the next coarser level, PSP for crf3."""
        return tuple(self.crf_dims[i + 1] // 4 for i in range(3)) + (self.psp_channels,)

    def validate(self) -> None:
        """Raise ValueError naming the field when the configuration cannot build a network."""
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ValueError(f"ModelConfig '{self.name}': depths and num_heads need 4 entries (one per Swin stage)")
        if len(self.crf_dims) != 4 or len(self.crf_num_heads) != 4:
            raise ValueError(f"ModelConfig '{self.name}': crf_dims and crf_num_heads need 4 entries (crf0..crf3)")
        for channels, heads in zip(self.swin_channels, self.num_heads):
            if channels % heads:
                raise ValueError(f"ModelConfig '{self.name}': num_heads {heads} does not divide Swin width {channels}")
        for dim, heads in zip(self.crf_dims, self.crf_num_heads):
            if dim % heads:
                raise ValueError(f"ModelConfig '{self.name}': crf_num_heads {heads} does not divide crf dim {dim}")
        for dim in self.crf_dims[1:]:
            if dim % 4:
                raise ValueError(f"ModelConfig '{self.name}': crf_dims {self.crf_dims}: levels 1-3 must be "
                                 "multiples of 4 (PixelShuffle(2) between levels)")
        if self.psp_channels % self.psp_gn_groups:
            raise ValueError(f"ModelConfig '{self.name}': psp_gn_groups {self.psp_gn_groups} does not divide "
                             f"psp_channels {self.psp_channels}")
        if len(self.cnn_block_config) != 4:
            raise ValueError(f"ModelConfig '{self.name}': cnn_block_config needs 4 dense blocks")
        if self.max_depth <= 0:
            raise ValueError(f"ModelConfig '{self.name}': max_depth must be > 0 metres, got {self.max_depth}")
        if not (self.ray_focal_px >= 0 and self.ray_focal_px < float("inf")):
            raise ValueError(f"ModelConfig '{self.name}': ray_focal_px must be a focal length in px >= 0 "
                             f"(0 = no ray embedding), got {self.ray_focal_px}")
        if self.ape_grid and (len(self.ape_grid) != 2 or min(self.ape_grid) < 1):
            raise ValueError(f"ModelConfig '{self.name}': ape_grid must be (rows, cols) >= 1 or empty, "
                             f"got {self.ape_grid}")
        if self.up_mode not in UP_MODES:
            raise ValueError(f"ModelConfig '{self.name}': up_mode must be one of {UP_MODES}, got {self.up_mode!r}")
        unknown = [p for p in self.dgr_positions if p not in DGR_POSITIONS]
        if unknown:
            raise ValueError(f"ModelConfig '{self.name}': unknown dgr_positions {unknown}; choose from {DGR_POSITIONS}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of ``to_dict``; unknown keys are an error (a config from a newer/older version)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_name(cls, name: str) -> "ModelConfig":
        """One of ``VARIANTS``: tiny07, base07, large07 (official) or nano (CPU/demo size)."""
        if name not in VARIANTS:
            raise ValueError(f"unknown model variant '{name}'; choose from {sorted(VARIANTS)}")
        return VARIANTS[name]


VARIANTS: dict[str, ModelConfig] = {
    "tiny07": ModelConfig(name="tiny07", embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "base07": ModelConfig(name="base07", embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "large07": ModelConfig(name="large07", embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
    "nano": ModelConfig(
        name="nano", embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), drop_path_rate=0.1,
        psp_channels=48, psp_gn_groups=24, crf_dims=(16, 32, 48, 64), crf_num_heads=(1, 1, 2, 4),
        # The CNN decoder runs two 3x3 convs at full resolution with the stem's width: keep it narrow.
        cnn_growth_rate=8, cnn_block_config=(2, 2, 2, 2), cnn_init_features=8, cnn_bn_size=4),
}
