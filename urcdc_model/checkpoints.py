"""Loading and saving URCDC-Depth weights.

Reads our safetensors files (weights + JSON config and metadata) and the official checkpoints
(``model_kittieigen.ckpt`` / ``model_nyu.ckpt``: ``{'model': ...}`` with DataParallel ``module.``
prefixes; also ``{'state_dict': ...}`` or bare dicts) through ``torch.load(weights_only=True)``,
never plain pickle. Without a stored config the variant is inferred from the key shapes.
A deploy model (``with_cnn=False``) loads the Transformer keys strictly and ignores the CNN keys.
"""
from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import save_file

from .deploy.errors import ModelFileError, ModelFileNotFoundError, one_line
from .models import VARIANTS, ModelConfig, URCDCDepth

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.safetensors"
DEFAULT_MAX_DEPTH_M = 80.0  # for official checkpoints, which store no config: KITTI 80 m, NYU 10 m

# Keys of the CNN branch (training only); everything else is the deployed Transformer branch.
CNN_KEY_PREFIXES = ("backbone.base_model.", "backbone.fusion", "decoder2.", "last_layer_depth.", "last_layer_uncer.",
                    "fusion")  # top-level fusion*: coupling units of an earlier official layout

# The fix every checkpoint error ends with: valid wherever a checkpoint is asked for (CLIs and the node).
CHECKPOINT_HINT = "pass a URCDC-Depth .safetensors/.ckpt checkpoint, or 'default' for the embedded model"

_CONFIG_KEY = "urcdc_config"
_META_KEY = "urcdc_meta"
_TORCH_SUFFIXES = (".ckpt", ".pth", ".pt", ".bin")


class CheckpointError(ModelFileError):
    """A checkpoint file that cannot be read or does not fit the model (one line: file, problem, fix)."""


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """``"default"`` -> the embedded default weights; otherwise the path, which must exist."""
    if str(checkpoint) == "default":
        if not DEFAULT_CHECKPOINT.is_file():
            raise ModelFileNotFoundError(
                f"{DEFAULT_CHECKPOINT}: the embedded default model is missing from this installation; "
                "reinstall the package (`pip install -e .`), or pass a checkpoint path instead of 'default'")
        return DEFAULT_CHECKPOINT
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ModelFileNotFoundError(f"{path}: checkpoint file not found; {CHECKPOINT_HINT}")
    return path


def is_cnn_key(key: str) -> bool:
    """True for CNN-branch keys (ignored by the deploy model)."""
    return key.startswith(CNN_KEY_PREFIXES)


def read_checkpoint(checkpoint: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    """(state_dict with official key names, stored config dict or None, metadata dict)."""
    path = resolve_checkpoint(checkpoint)
    if path.suffix == ".safetensors":
        return _read_safetensors(path, map_location)
    if path.suffix.lower() in _EXPORTED_SUFFIXES:
        raise CheckpointError(f"{path}: {_EXPORTED_SUFFIXES[path.suffix.lower()]}, not a checkpoint; pass the "
                              ".safetensors/.ckpt checkpoint it was made from, or 'default'")
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        # torch's own text advises weights_only=False (arbitrary code execution): never shown to the user
        raise CheckpointError(_torch_load_failure(path, exc)) from exc
    return unwrap_state_dict(raw, source=str(path)), None, {}


# Files our export writes: named so a user who passes one where a checkpoint is needed learns what it is.
_EXPORTED_SUFFIXES = {".onnx": "an exported ONNX model", ".engine": "a TensorRT engine", ".plan": "a TensorRT engine",
                      ".trt": "a TensorRT engine", ".ep": "a torch-tensorrt ExportedProgram"}


def _torch_load_failure(path: Path, exc: Exception) -> str:
    """One line for a file torch.load refused: what the file is not (and is, when recognisable), and the fix."""
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if unsafe:
        return (f"{path}: holds pickled Python objects besides tensors ({unsafe.group(1)}), which are never "
                "unpickled here because that can run code; save only the weights "
                "(`torch.save(model.state_dict(), 'weights.pth')`) or pass a .safetensors checkpoint")
    what = describe_file_contents(path)
    if what is None:
        what = ("truncated or corrupt" if isinstance(exc, RuntimeError) and "zip" in str(exc)
                else "corrupt, truncated or another format")
        return f"{path}: not a readable PyTorch checkpoint ({what}); copy it again, or {CHECKPOINT_HINT}"
    return f"{path}: {what}, not a model checkpoint; {CHECKPOINT_HINT}"


def describe_file_contents(path: Path) -> str | None:
    """What a file that is not a checkpoint looks like from its first bytes ("a NumPy .npy array", ...),
    or None when it might be a damaged checkpoint."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return None  # a truncated zip: most likely a damaged torch.save file
        if any(name.endswith("data.pkl") for name in names):
            return None
        return "a NumPy .npz archive" if names and all(n.endswith(".npy") for n in names) else "a zip archive"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file"
    return None


def _numpy_array_globals() -> list:
    """Allow plain numpy arrays/scalars in weights-only loading (no arbitrary objects).

    The official trainer stores ``best_eval_steps`` as a numpy array next to the weights; files
    written under numpy 1.x name ``numpy.core.*``, under numpy 2.x ``numpy._core.*``.
    """
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    allowed: list = [np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles the dtype's class too
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType") and name != "ObjectDType"]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    return allowed


def _read_safetensors(path: Path, map_location: str | torch.device
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    device = str(map_location) if not isinstance(map_location, str) else map_location
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt: {one_line(exc, 120)}); "
                              f"copy it again, or {CHECKPOINT_HINT}") from exc
    try:
        config = json.loads(header[_CONFIG_KEY]) if _CONFIG_KEY in header else None
        meta = json.loads(header[_META_KEY]) if _META_KEY in header else {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata field '{_CONFIG_KEY}'/'{_META_KEY}' is not valid JSON ({exc}); "
                              "re-save it with urcdc_model.checkpoints.save_model") from exc
    return unwrap_state_dict(state, source=str(path)), config, meta


def unwrap_state_dict(raw: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Accept ``{'model': sd}``, ``{'state_dict': sd}`` or a bare sd; strip DataParallel ``module.``."""
    state = raw
    for wrapper in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: not a model checkpoint (no state dict: expected {{'model': ...}}, "
                              f"{{'state_dict': ...}} or a dict of tensors); {CHECKPOINT_HINT}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


# Fields a checkpoint may set on top of a named variant without becoming "custom".
_OPTIONS_ON_TOP_OF_A_VARIANT = ("max_depth", "with_cnn", "dgr_positions", "up_mode", "ape_grid")


def infer_config(state: Mapping[str, torch.Tensor], max_depth: float = DEFAULT_MAX_DEPTH_M) -> ModelConfig:
    """Reconstruct the ModelConfig of an official-layout state dict from its key shapes."""
    try:
        embed_dim = state["backbone.patch_embed.proj.weight"].shape[0]
        patch_size = state["backbone.patch_embed.proj.weight"].shape[-1]
        depths = tuple(_count_indices(state, f"backbone.layers.{i}.blocks.") for i in range(4))
        num_heads = tuple(state[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1]
                          for i in range(4))
        table_rows = state["backbone.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
        crf_dims = tuple(state[f"crf{k}.norm_crf.weight"].shape[0] for k in range(4))
        crf_heads = tuple(state[f"crf{k}.crf_layer.blocks.0.attn.relative_position_bias_table"].shape[1]
                          for k in range(4))
        crf_rows = state["crf0.crf_layer.blocks.0.attn.relative_position_bias_table"].shape[0]
        psp_channels = state["decoder.bottleneck.conv.weight"].shape[0]
        mlp_hidden = state["backbone.layers.0.blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"state dict lacks {exc}: not a URCDC-Depth / NeWCRFs checkpoint "
                              "(keys like backbone.patch_embed.proj.weight, crf0.norm_crf.weight expected); "
                              f"{CHECKPOINT_HINT}") from exc
    fields: dict[str, Any] = dict(
        embed_dim=embed_dim, patch_size=patch_size, depths=depths, num_heads=num_heads,
        window_size=_window_from_table(table_rows), mlp_ratio=mlp_hidden / embed_dim,
        psp_channels=psp_channels, psp_gn_groups=psp_channels // 2, crf_dims=crf_dims, crf_num_heads=crf_heads,
        crf_window_size=_window_from_table(crf_rows), max_depth=float(max_depth))
    with_cnn = "backbone.base_model.conv0.weight" in state
    fields["with_cnn"] = with_cnn
    if with_cnn:
        growth = state["backbone.base_model.denseblock1.denselayer1.conv2.weight"].shape[0]
        fields.update(
            cnn_init_features=state["backbone.base_model.conv0.weight"].shape[0], cnn_growth_rate=growth,
            cnn_bn_size=state["backbone.base_model.denseblock1.denselayer1.conv1.weight"].shape[0] // growth,
            cnn_block_config=tuple(_count_named(state, f"backbone.base_model.denseblock{b}.denselayer")
                                   for b in range(1, 5)))
    dgr = tuple(p for p in ("swin0", "swin1", "swin2", "swin3", "crf3", "crf2", "crf1", "crf0")
                if any(k.startswith(f"dgr.{p}.") for k in state))
    fields["dgr_positions"] = dgr
    fields["up_mode"] = "mask" if "mask_head.0.weight" in state else "bilinear"
    ape = state.get("backbone.absolute_pos_embed")
    fields["ape_grid"] = tuple(ape.shape[-2:]) if ape is not None else ()
    name = "custom"
    for variant, cfg in VARIANTS.items():
        if all(getattr(cfg, f) == v for f, v in fields.items() if f not in _OPTIONS_ON_TOP_OF_A_VARIANT):
            name = variant
            break
    fields["name"] = name
    if name == "custom":
        fields["drop_path_rate"] = 0.0
    return dataclasses.replace(VARIANTS.get(name, ModelConfig(**fields)), **fields)


def _count_indices(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    ids = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def _count_named(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    ids = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(ids) if ids else 0


def _window_from_table(rows: int) -> int:
    side = round(rows ** 0.5)  # table has (2W-1)^2 rows
    return (side + 1) // 2


def load_state_dict(model: URCDCDepth, state: Mapping[str, torch.Tensor]) -> None:
    """Load official-layout weights strictly; a deploy model ignores CNN-branch keys."""
    state = dict(state)
    if not model.cfg.with_cnn:
        state = {k: v for k, v in state.items() if not is_cnn_key(k)}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        parts = [f"{label} {len(keys)}: {show(keys)}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched)) if keys]
        raise CheckpointError(f"weights do not fit model '{model.cfg.name}': " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_model(checkpoint: str | Path = "default", with_cnn: bool = False, map_location: str | torch.device = "cpu",
               max_depth: float | None = None) -> tuple[URCDCDepth, ModelConfig, dict[str, Any]]:
    """(model in eval mode, its config, metadata) from ``"default"`` or a checkpoint path.

    ``max_depth`` overrides the stored value; for official checkpoints (no stored config) it
    defaults to 80 m (KITTI); pass 10 for NYU models.
    """
    state, config, meta = read_checkpoint(checkpoint, map_location=map_location)
    if config is not None:
        try:
            cfg = ModelConfig.from_dict(config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{checkpoint}: stored model config is invalid ({exc})") from exc
    else:
        try:
            cfg = infer_config(state, max_depth=DEFAULT_MAX_DEPTH_M if max_depth is None else max_depth)
        except CheckpointError as exc:
            raise CheckpointError(f"{checkpoint}: {exc}") from exc
    if with_cnn and not any(is_cnn_key(k) for k in state):
        raise CheckpointError(f"{checkpoint}: holds only the Transformer branch; load it with with_cnn=False")
    changes: dict[str, Any] = {"with_cnn": with_cnn}
    if max_depth is not None:
        changes["max_depth"] = float(max_depth)
    cfg = dataclasses.replace(cfg, **changes)
    model = URCDCDepth(cfg)
    try:
        load_state_dict(model, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{checkpoint}: {exc}") from exc
    model.to(map_location).eval()
    return model, cfg, dict(meta)


def load_swin_imagenet(model: URCDCDepth, checkpoint: str | Path) -> list[str]:
    """Initialise the Swin backbone from an official ImageNet checkpoint (to start training).

    Accepts e.g. ``swin_large_patch4_window7_224_22k.pth`` (keys under ``model``; no ``norm0-3``;
    a classifier ``norm``/``head`` and ``attn_mask`` buffers that are dropped). Bias tables of a
    different window size are resized bicubically, as the official loader does. Returns the keys
    loaded; raises CheckpointError when a patch-embedding or stage weight is missing or mis-shaped.
    """
    state, _, _ = read_checkpoint(checkpoint)
    backbone = model.backbone
    own = backbone.state_dict()
    wanted = [k for k in own if k.startswith(("patch_embed.", "layers."))]
    loaded: dict[str, torch.Tensor] = {}
    problems = []
    for key in wanted:
        if key not in state:
            problems.append(f"missing {key}")
            continue
        value = state[key]
        if key.endswith("relative_position_bias_table") and value.shape != own[key].shape:
            value = _resize_bias_table(value, own[key].shape)
        if value.shape != own[key].shape:
            problems.append(f"{key} has shape {tuple(value.shape)}, model needs {tuple(own[key].shape)}")
            continue
        loaded[key] = value
    if problems:
        raise CheckpointError(f"{checkpoint}: does not fit the '{model.cfg.name}' Swin backbone "
                              f"(embed {model.cfg.embed_dim}, depths {model.cfg.depths}): " + "; ".join(problems[:5]))
    backbone.load_state_dict(loaded, strict=False)
    return sorted(loaded)


_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def load_densenet_imagenet(model: URCDCDepth, checkpoint: str | Path) -> list[str]:
    """Initialise the CNN branch's DenseNet from torchvision ImageNet weights (e.g. ``densenet161-8d451a50.pth``).

    The official code starts from ``densenet161(pretrained=True).features``. Accepts torchvision's
    file (``features.*`` keys, old-style ``norm.1`` names are renamed as torchvision does) or a bare
    ``features`` state dict; the classifier is dropped. All DenseNet keys must fit (strict).
    """
    if model.backbone.base_model is None:
        raise CheckpointError("model has no CNN branch (with_cnn=False); build it with with_cnn=True")
    state, _, _ = read_checkpoint(checkpoint)
    features = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue
        key = key[len("features."):] if key.startswith("features.") else key
        match = _OLD_DENSENET_KEY.match(key)
        features[match.group(1) + match.group(2) if match else key] = value
    base_model = model.backbone.base_model
    own = base_model.state_dict()
    for key in own:  # torchvision's published files predate BatchNorm's num_batches_tracked
        if key.endswith("num_batches_tracked") and key not in features:
            features[key] = own[key]
    missing = sorted(set(own) - set(features))
    unexpected = sorted(set(features) - set(own))
    mismatched = sorted(k for k in set(own) & set(features) if own[k].shape != features[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{checkpoint}: does not fit the '{model.cfg.name}' DenseNet (growth {model.cfg.cnn_growth_rate}, "
            f"blocks {model.cfg.cnn_block_config}): missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape-mismatched {mismatched[:3]}")
    base_model.load_state_dict(features, strict=True)
    return sorted(features)


def _resize_bias_table(table: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(2W-1)^2 x nH table -> another window size by bicubic interpolation (official loader)."""
    side_old, side_new = round(table.shape[0] ** 0.5), round(shape[0] ** 0.5)
    if table.shape[1] != shape[1]:
        return table  # head count differs: reported as a shape mismatch by the caller
    grid = table.permute(1, 0).reshape(1, table.shape[1], side_old, side_old).float()
    grid = torch.nn.functional.interpolate(grid, size=(side_new, side_new), mode="bicubic")
    return grid.reshape(shape[1], -1).permute(1, 0).to(table.dtype)


def save_model(path: str | Path, model: nn.Module, cfg: ModelConfig, meta: Mapping[str, Any] | None = None) -> Path:
    """Write weights + config (+ metadata such as input_height/input_width) to a .safetensors file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: save_model writes safetensors; use a .safetensors file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    header = {_CONFIG_KEY: json.dumps(cfg.to_dict()), _META_KEY: json.dumps(dict(meta or {}))}
    save_file(state, str(path), metadata=header)
    return path
