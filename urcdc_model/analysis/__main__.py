"""python -m urcdc_model.analysis --checkpoint default --images DIR --gt DIR --output DIR

Sparse-input response, input-gradient receptive reliance and depth-gradient continuity of the
Transformer and CNN branches; writes report.md, report.json and PNG figures into --output.
"""
from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
from pathlib import Path

import torch

from urcdc_model import cli
from urcdc_model.checkpoints import CheckpointError, load_model, resolve_checkpoint
from urcdc_model.data.synthetic import HELD_OUT_SEED
from urcdc_model.deploy.geometry import CanonicalCamera, canonical_camera_from_meta

from .branches import parse_branches
from .dgr_variants import dgr_modules, trained_dgr_modules, without_dgr
from .inputs import expand_paths, load_image_frames, procedural_frames
from .report import write_report
from .run import AnalysisOptions, ContinuityVariant, analyse
from .sparse import DEFAULT_KEEP_FRACTIONS


def parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--keep-fractions: expected numbers such as 0.01,0.1,1, got {text!r}") from None
    if not fractions or any(not 0 < p <= 1 for p in fractions):
        raise argparse.ArgumentTypeError(f"--keep-fractions: every fraction must be in (0, 1], got {text!r}")
    return fractions


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.analysis", __doc__)
    cli.add_checkpoint(parser)
    parser.add_argument("--images", nargs="*", default=[], help="image files and/or directories of .png/.jpg")
    parser.add_argument("--gt", nargs="*", default=[],
                        help="GT depth PNGs (uint16) or directories; paired to images by name or frame number")
    parser.add_argument("--gt-depth-scale", type=float, default=None,
                        help="GT PNG value per metre (256 KITTI, 1000 NYU); default: 'depth_scale' of an "
                             "intrinsics.json beside the GT folder")
    parser.add_argument("--procedural", type=int, default=0, metavar="N",
                        help="also analyse N procedural frames with exact depth (urcdc_model.data.synthetic)")
    parser.add_argument("--procedural-kind", choices=("street", "indoor"), default="street")
    parser.add_argument("--procedural-seed", type=int, default=HELD_OUT_SEED,
                        help="first render seed (default: the held-out test seeds, never used in training)")
    parser.add_argument("--output", required=True, type=Path, help="directory for report.md, report.json, PNGs")
    parser.add_argument("--branches", type=parse_branches, default=["transformer", "cnn"],
                        help="comma list of transformer,cnn (default both)")
    cli.add_input_size(parser, old_name="--size")
    parser.add_argument("--keep-fractions", type=parse_fractions, default=list(DEFAULT_KEEP_FRACTIONS),
                        help="comma list of kept-pixel fractions (default 0.01,...,1)")
    parser.add_argument("--masks-per-fraction", type=int, default=2, help="random masks per image and fraction")
    parser.add_argument("--targets", type=int, default=4, help="attribution target pixels per image")
    parser.add_argument("--top-k-fraction", type=float, default=0.005,
                        help="top-k influential pixels, as a fraction of the image (default 0.5 %%)")
    parser.add_argument("--dgr-checkpoint", nargs="*", default=[],
                        help="checkpoints with trained DGR modules (e.g. from urcdc_model.analysis.dgr_probe): "
                             "the continuity of each is measured with and without its DGR")
    parser.add_argument("--compare-checkpoints", nargs="*", default=[],
                        help="more checkpoints scored for continuity beside the main one (e.g. an ablation pair "
                             "trained with and without DGR)")
    parser.add_argument("--seed", type=int, default=0, help="seed of masks and target pixels")
    cli.add_no_progress(parser)
    return parser


def load_for_analysis(checkpoint: str, branches: list[str]):
    with_cnn = "cnn" in branches
    try:
        model, cfg, meta = load_model(checkpoint, with_cnn=with_cnn, map_location="cpu")
    except CheckpointError as exc:
        if with_cnn and "only the Transformer branch" in str(exc):
            raise CheckpointError(f"{exc}; analyse it with --branches transformer") from exc
        raise
    return model.eval(), cfg, meta or {}


def model_canonical_camera(meta: dict, cfg, analysis_hw: tuple[int, int]) -> CanonicalCamera:
    """The checkpoint's canonical camera, as DepthRuntime derives it (official checkpoints record no size)."""
    official = "input_height" not in meta
    train_hw = analysis_hw if official else (int(meta["input_height"]), int(meta["input_width"]))
    return canonical_camera_from_meta(meta, train_hw, float(cfg.max_depth), official)


def file_sha256(path: Path) -> str:
    """Which weights a report describes, even after `default` is retrained."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def checkpoint_label(checkpoint: str) -> str:
    """'default', else the file stem, or the folder name for generic stems (runs/ablation/dgr/model.safetensors)."""
    if checkpoint == "default":
        return "default"
    path = Path(checkpoint)
    return path.parent.name if path.stem in ("model", "last", "best") and path.parent.name else path.stem


def dgr_variants(model, label: str, dgr_checkpoints: list[str], compare_checkpoints: list[str],
                 branches: list[str], log):
    """The extra continuity variants and a sentence saying exactly what is compared.

    DGR sits in the Transformer branch (after Swin stages / NeWCRF levels; the CNN branch reads the
    Swin features before it), so only the Transformer branch is compared with and without it.
    """
    variants = []
    notes = []
    used_labels = {label}

    def unique(name: str) -> str:
        candidate, count = name, 1
        while candidate in used_labels:
            count += 1
            candidate = f"{name} #{count}"
        used_labels.add(candidate)
        return candidate

    trained = trained_dgr_modules(model)
    if trained:
        variants.append(ContinuityVariant(f"{label} without DGR", without_dgr(model), ["transformer"]))
        notes.append(f"`{label}` has trained DGR modules ({', '.join(trained)}); its Transformer branch is compared "
                     "with the same weights with every DGR module bypassed (DGR is residual, so bypassing = identity).")
    elif dgr_modules(model):
        notes.append(f"`{label}` has DGR modules, but they are untrained (zero-initialised, the identity), so "
                     "with and without DGR would be the same network; not compared.")
    else:
        notes.append(f"`{label}` has no DGR modules.")
    for dgr_checkpoint in dgr_checkpoints:
        dgr_model, _, dgr_meta = load_for_analysis(dgr_checkpoint, ["transformer"])
        dgr_label = unique(checkpoint_label(dgr_checkpoint))
        trained_other = trained_dgr_modules(dgr_model)
        if not trained_other:
            raise ValueError(f"--dgr-checkpoint {dgr_checkpoint}: it has no trained DGR modules to compare")
        variants += [ContinuityVariant(dgr_label, dgr_model, ["transformer"]),
                     ContinuityVariant(f"{dgr_label} without DGR", without_dgr(dgr_model), ["transformer"])]
        probe = dgr_meta.get("dgr_probe")
        origin = (f"only its DGR modules were fitted ({probe['steps']} steps; SILog {probe['first_silog']:.3f} "
                  f"over the first 10 steps, {probe['last_silog']:.3f} over the last 10, on procedural training "
                  "scenes) on top of the frozen "
                  f"`{probe['base_checkpoint']}` network, so without DGR it is exactly that network"
                  if probe else "trained end to end with DGR, so bypassing its DGR also removes what the rest of "
                  "the network learnt to expect from it")
        notes.append(f"`{dgr_label}` (--dgr-checkpoint, DGR at {', '.join(trained_other)}): {origin}. Its "
                     "Transformer branch is compared with and without its DGR modules.")
    for checkpoint in compare_checkpoints:
        compare_branches = branches
        try:
            other, _, _ = load_for_analysis(checkpoint, branches)
        except CheckpointError:
            compare_branches = ["transformer"]
            other, _, _ = load_for_analysis(checkpoint, compare_branches)
        other_label = unique(checkpoint_label(checkpoint))
        other_dgr = trained_dgr_modules(other)
        variants.append(ContinuityVariant(other_label, other, compare_branches))
        notes.append(f"`{other_label}` (--compare-checkpoints) "
                     + (f"has trained DGR at {', '.join(other_dgr)}." if other_dgr else "has no trained DGR."))
    if not trained and not dgr_checkpoints and not compare_checkpoints:
        notes.append("No with/without-DGR comparison was made: give --dgr-checkpoint a model with trained DGR "
                     "(e.g. from `python -m urcdc_model.analysis.dgr_probe`).")
    log("DGR: " + " ".join(notes))
    return variants, " ".join(notes)


def main(argv: list[str] | None = None) -> int:
    try:
        return run_cli(argv)
    except (CheckpointError, FileNotFoundError, ValueError, *cli.USER_ERRORS) as exc:
        return cli.print_error(exc)


def run_cli(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    if not args.images and args.procedural <= 0:
        build_parser().error("nothing to analyse: give --images and/or --procedural N")
    if args.gt and not args.images:
        build_parser().error("--gt needs --images to pair with")
    start = time.perf_counter()
    expand_paths(args.images, "--images")  # fail on a wrong path before the model is loaded
    expand_paths(args.gt, "--gt")
    model, cfg, meta = load_for_analysis(args.checkpoint, args.branches)
    size = args.input_size or (meta.get("input_height"), meta.get("input_width"))
    if not all(size):
        build_parser().error(f"{args.checkpoint}: no training size in its metadata; pass --input-size HEIGHTxWIDTH")
    height, width = int(size[0]), int(size[1])
    canonical = model_canonical_camera(meta, cfg, (height, width))
    frames = (load_image_frames(args.images, args.gt, height, width, args.gt_depth_scale, canonical=canonical)
              if args.images else [])
    if args.procedural > 0:
        frames += procedural_frames(args.procedural, height, width, kind=args.procedural_kind,
                                    seed=args.procedural_seed, canonical=canonical)
    log(f"input plan: canonical focal {canonical.focal_px:.1f} px; "
        + ", ".join(sorted({f"{f.group}: " + ("fallback field of view" if f.plan.fallback else "intrinsics")
                            for f in frames})))
    label = checkpoint_label(args.checkpoint)
    variants, dgr_note = dgr_variants(model, label, args.dgr_checkpoint, args.compare_checkpoints,
                                      args.branches, log)
    options = AnalysisOptions(
        branches=args.branches,
        keep_fractions=args.keep_fractions,
        masks_per_fraction=args.masks_per_fraction,
        targets_per_image=args.targets,
        top_k_fraction=args.top_k_fraction,
        max_depth_m=float(cfg.max_depth),
        seed=args.seed,
        progress=not args.no_progress,
    )
    numbers, figures = analyse(model, frames, options, variants, model_label=label, log=log)
    details = {
        "checkpoint": f"{args.checkpoint} (sha256 {file_sha256(resolve_checkpoint(args.checkpoint))[:16]})",
        "variant": getattr(cfg, "name", "?"),
        "max depth": f"{cfg.max_depth:g} m",
        "analysis size": f"{width}x{height}",
        "torch threads": str(torch.get_num_threads()),
    }
    arguments = argv if argv is not None else sys.argv[1:]
    command = "python -m urcdc_model.analysis " + " ".join(shlex.quote(a) for a in arguments)
    report = write_report(numbers, figures, args.output, details, dgr_note, command)
    log(f"wrote {report} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
