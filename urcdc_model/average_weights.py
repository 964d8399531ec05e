"""Average the weights of two checkpoints of the same model (one fine-tuned from the other).

    python -m urcdc_model.average_weights A.safetensors B.safetensors --weight 0.5 --output C.safetensors

Weight averaging along one fine-tuning run ("WiSE-FT", Wortsman et al., CVPR 2022; "model soups",
ICML 2022) keeps part of what each end point does well: the embedded default's stage 4 is
``0.5 × stage 3b + 0.5 × its camera-augmented fine-tune`` (urcdc_model/weights/README.md). The weight
is chosen on validation scenes, never on the benchmark's.

The output keeps B's model config and metadata and records where it came from (``weight_average``).
B may have a zero-initialised module A lacks (a ray embedding added in B's fine-tune): A counts as zeros there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from urcdc_model import cli
from urcdc_model.checkpoints import CheckpointError, load_state_dict, read_checkpoint, save_model
from urcdc_model.deploy.files import file_sha256
from urcdc_model.models import URCDCDepth, with_zero_initialised_weights
from urcdc_model.models.config import ModelConfig


def average_checkpoints(path_a: str | Path, path_b: str | Path, weight_b: float, output: str | Path) -> Path:
    """(1 - weight_b) · A + weight_b · B, tensor by tensor, written as a .safetensors checkpoint."""
    if not 0.0 <= weight_b <= 1.0:
        raise ValueError(f"--weight must be within [0, 1], got {weight_b}")
    state_a, _, _ = read_checkpoint(path_a)
    state_b, config_b, meta_b = read_checkpoint(path_b)
    if config_b is None:
        raise CheckpointError(f"{path_b}: no model config stored; B must be a checkpoint our trainer wrote")
    cfg = ModelConfig.from_dict(config_b)
    model = URCDCDepth(cfg)
    # B fine-tuned with a module A predates (the ray embedding): A's weights mean that module at zero
    state_a = with_zero_initialised_weights(model, state_a)
    if set(state_a) != set(state_b) or any(state_a[k].shape != state_b[k].shape for k in state_b):
        raise CheckpointError(f"{path_a} and {path_b} are not the same model (their weights differ in names or "
                              "shapes); average two checkpoints of one fine-tuning run")
    averaged = {key: torch.lerp(state_a[key].float(), value.float(), weight_b).to(value.dtype)
                if value.is_floating_point() else value for key, value in state_b.items()}
    load_state_dict(model, averaged)
    meta = {**meta_b, "weight_average": {"a": Path(path_a).name, "a_sha256": file_sha256(path_a),
                                         "b": Path(path_b).name, "b_sha256": file_sha256(path_b),
                                         "weight_b": weight_b}}
    return save_model(output, model, cfg, meta=meta)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.average_weights", __doc__.split("\n")[0])
    parser.add_argument("a", help="first checkpoint (.safetensors/.ckpt)")
    parser.add_argument("b", help="second checkpoint, fine-tuned from the first (.safetensors; its config is kept)")
    parser.add_argument("--weight", type=float, default=0.5, help="weight of B (0 = A, 1 = B; default 0.5)")
    parser.add_argument("--output", required=True, help="the averaged .safetensors checkpoint")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = average_checkpoints(args.a, args.b, args.weight, args.output)
    except (FileNotFoundError, ValueError, *cli.USER_ERRORS) as error:
        return cli.print_error(error)
    print(f"wrote {path} = {1 - args.weight:g} x {args.a} + {args.weight:g} x {args.b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
