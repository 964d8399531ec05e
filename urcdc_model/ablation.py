"""Ablation on procedural street scenes: `python -m urcdc_model.ablation [--steps N] [--nproc 2]`.

Trains small URCDC models with equal budgets (same steps, batch, seed, schedule; only the ablated
switch differs) and compares them on freshly rendered held-out scenes:

- cross-distillation on/off, read on the CNN branch (and the Transformer branch);
- CutFlip on/off, read on a test set with shifted horizons (camera pitch and height outside the
  training range) and on the training camera range;
- DGR on/off (after the two finest NeWCRF levels);
- the optimal-transport loss on/off.

A second seed of the baseline gives the seed-to-seed noise floor; a paired bootstrap over the test
images gives a 95 % interval for each difference. A difference counts only when its interval
excludes zero *and* it exceeds the seed-to-seed spread. Prints a table and writes docs/ABLATION.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import ConcatDataset

from urcdc_model import cli
from urcdc_model.checkpoints import load_model
from urcdc_model.data.synthetic import (
    HELD_OUT_SEED,
    STREET_SHIFTED_CAMERA_DOWN,
    STREET_SHIFTED_CAMERA_UP,
    STREET_TRAIN_CAMERA,
    SyntheticDepthDataset,
)
from urcdc_model.training.evaluation import mean_metrics, per_image_metrics

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "config" / "model" / "synthetic_nano.yaml"
# Test seeds: the same region `evaluate --dataset synthetic` draws from; never trained on.
TEST_SEED = HELD_OUT_SEED + 50_000
SHIFTED_DOWN_SEED = HELD_OUT_SEED + 60_000
SHIFTED_UP_SEED = HELD_OUT_SEED + 70_000
OT_WEIGHT = 100.0      # OT of a poor prediction is ~1e-2 on the 8x24 grid; this makes it ~15 % of SILog
DGR_POSITIONS = ["crf1", "crf0"]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    changes: dict = field(default_factory=dict)   # {section: {key: value}} or {"seed": n}


VARIANTS = (
    Variant("baseline", "URCDC (distillation 0.1, CutFlip p=0.5), no DGR, no OT"),
    Variant("baseline_seed1", "baseline with seed 1 (noise floor)", {"seed": 1}),
    Variant("no_distill", "baseline without cross-distillation", {"loss": {"distill_weight": 0.0}}),
    Variant("no_cutflip", "baseline without CutFlip", {"data": {"cutflip_probability": 0.0}}),
    Variant("dgr", f"baseline + DGR at {', '.join(DGR_POSITIONS)}", {"model": {"dgr_positions": DGR_POSITIONS}}),
    Variant("ot", f"baseline + OT loss (weight {OT_WEIGHT:g})", {"loss": {"ot_weight": OT_WEIGHT}}),
)


@dataclass(frozen=True)
class Comparison:
    question: str
    with_variant: str
    without_variant: str
    branch: str          # transformer | cnn
    test_set: str        # test | shifted


COMPARISONS = (
    Comparison("cross-distillation, CNN branch", "baseline", "no_distill", "cnn", "test"),
    Comparison("cross-distillation, Transformer branch", "baseline", "no_distill", "transformer", "test"),
    Comparison("CutFlip, shifted horizons", "baseline", "no_cutflip", "transformer", "shifted"),
    Comparison("CutFlip, training camera range", "baseline", "no_cutflip", "transformer", "test"),
    Comparison("DGR", "dgr", "baseline", "transformer", "test"),
    Comparison("OT loss", "ot", "baseline", "transformer", "test"),
)


def variant_config(base: dict, variant: Variant, steps: int) -> dict:
    """The base config with the variant's switch and the ablation's small, equal budget."""
    config = json.loads(json.dumps(base))
    config["name"] = f"ablation_{variant.name}"
    config["optim"]["total_steps"] = steps
    config["data"]["val_samples"] = 4
    config["log"].update(log_every=25, image_every=0, eval_every=0, checkpoint_every=steps)
    for section, changes in variant.changes.items():
        if section == "seed":
            config["seed"] = changes
        else:
            config.setdefault(section, {}).update(changes)
    return config


def train_variant(config: dict, output: Path, nproc: int) -> float:
    """Run the trainer (torchrun with `nproc` single-threaded processes); returns wall seconds."""
    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "config_in.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [sys.executable])
    command = launcher + ["-m", "urcdc_model.train", "--config", str(config_path), "--output", str(output),
                          "--no-progress"]
    # One thread per process: OpenMP threads competing for 2 shared cores slow a step down several-fold.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    with open(output / "train.log", "w") as log:
        result = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"training {output.name} failed (exit {result.returncode}); see {output / 'train.log'}")
    return time.perf_counter() - start


def test_sets(height: int, width: int, num_images: int) -> dict[str, torch.utils.data.Dataset]:
    """In-range test scenes and shifted-horizon scenes (half camera lower/up-pitched, half higher/down-pitched)."""
    def scenes(seed: int, count: int, camera):
        return SyntheticDepthDataset(count, kind="street", height=height, width=width, seed=seed, train=False,
                                     camera_range=camera)

    half = max(num_images // 2, 1)
    return {"test": scenes(TEST_SEED, num_images, STREET_TRAIN_CAMERA),
            "shifted": ConcatDataset([scenes(SHIFTED_DOWN_SEED, half, STREET_SHIFTED_CAMERA_DOWN),
                                      scenes(SHIFTED_UP_SEED, half, STREET_SHIFTED_CAMERA_UP)])}


def paired_bootstrap(with_values: np.ndarray, without_values: np.ndarray, samples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean difference (with − without) over paired images and its 95 % bootstrap interval."""
    diff = np.asarray(with_values) - np.asarray(without_values)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def verdict(delta: float, low: float, high: float, noise: float) -> str:
    if (low > 0 or high < 0) and abs(delta) > noise:
        return "helps" if delta < 0 else "hurts"
    return "no effect beyond noise"


def run(steps: int, nproc: int, output: Path, num_test_images: int, reuse: bool) -> dict:
    base = yaml.safe_load(BASE_CONFIG.read_text())
    height, width = base["data"]["height"], base["data"]["width"]
    sets = test_sets(height, width, num_test_images)
    per_image: dict[str, dict[str, dict[str, list]]] = {}
    train_seconds: dict[str, float] = {}
    for variant in VARIANTS:
        run_dir = output / variant.name
        weights = run_dir / "model.safetensors"
        if not (reuse and weights.is_file()):
            print(f"[ablation] training {variant.name}: {variant.description} ({steps} steps; log "
                  f"{run_dir / 'train.log'})", flush=True)
            train_seconds[variant.name] = train_variant(variant_config(base, variant, steps), run_dir, nproc)
        print(f"[ablation] evaluating {variant.name} on {', '.join(sets)} ({num_test_images} scenes each)", flush=True)
        model, cfg, _ = load_model(weights, with_cnn=True)
        per_image[variant.name] = {
            name: per_image_metrics(model, dataset, torch.device("cpu"), cfg.max_depth) for name, dataset in sets.items()}
        summary = mean_metrics(per_image[variant.name]["test"]["transformer"])
        print(f"[ablation] {variant.name}: test abs_rel {summary['abs_rel']:.4f}", flush=True)
    return {"per_image": per_image, "train_seconds": train_seconds, "height": height, "width": width,
            "base": base}


def abs_rel_values(per_image: dict, variant: str, test_set: str, branch: str) -> np.ndarray:
    return np.array([m["abs_rel"] for m in per_image[variant][test_set][branch]])


def summarize(results: dict) -> tuple[list[dict], list[dict]]:
    per_image = results["per_image"]
    rows = []
    for variant in VARIANTS:
        row = {"variant": variant.name, "description": variant.description}
        for test_set in ("test", "shifted"):
            for branch in ("transformer", "cnn"):
                means = mean_metrics(per_image[variant.name][test_set][branch])
                row[f"{test_set}/{branch}"] = means
        rows.append(row)
    comparisons = []
    for comp in COMPARISONS:
        with_values = abs_rel_values(per_image, comp.with_variant, comp.test_set, comp.branch)
        without_values = abs_rel_values(per_image, comp.without_variant, comp.test_set, comp.branch)
        delta, low, high = paired_bootstrap(with_values, without_values)
        noise = abs(abs_rel_values(per_image, "baseline", comp.test_set, comp.branch).mean()
                    - abs_rel_values(per_image, "baseline_seed1", comp.test_set, comp.branch).mean())
        comparisons.append({"question": comp.question, "with": comp.with_variant, "without": comp.without_variant,
                            "branch": comp.branch, "test_set": comp.test_set,
                            "abs_rel_with": float(with_values.mean()), "abs_rel_without": float(without_values.mean()),
                            "delta": delta, "ci_low": low, "ci_high": high, "seed_noise": noise,
                            "verdict": verdict(delta, low, high, noise)})
    return rows, comparisons


def format_tables(rows: list[dict], comparisons: list[dict]) -> str:
    lines = ["| variant | test abs_rel (T) | test rms (T) | test d1 (T) | shifted abs_rel (T) | shifted d1 (T) "
             "| test abs_rel (CNN) | shifted abs_rel (CNN) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        t, s = row["test/transformer"], row["shifted/transformer"]
        ct, cs = row["test/cnn"], row["shifted/cnn"]
        lines.append(f"| {row['variant']} | {t['abs_rel']:.4f} | {t['rms']:.3f} | {t['d1']:.4f} | {s['abs_rel']:.4f} "
                     f"| {s['d1']:.4f} | {ct['abs_rel']:.4f} | {cs['abs_rel']:.4f} |")
    lines += ["", "| question | branch, test set | abs_rel with | abs_rel without | Δ (with − without) | 95 % CI "
              "| seed noise | verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(f"| {c['question']} ({c['with']} vs {c['without']}) | {c['branch']}, {c['test_set']} "
                     f"| {c['abs_rel_with']:.4f} | {c['abs_rel_without']:.4f} | {c['delta']:+.4f} "
                     f"| [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['seed_noise']:.4f} | {c['verdict']} |")
    return "\n".join(lines)


def write_doc(path: Path, command: str, results: dict, tables: str, args: argparse.Namespace,
              wall_seconds: float) -> None:
    base = results["base"]
    train_minutes = sum(results["train_seconds"].values()) / 60
    text = f"""# Ablation on procedural street scenes

Generated by `{command}` (`urcdc_model/ablation.py`); {wall_seconds / 60:.1f} min wall on this
machine ({train_minutes:.1f} min of it training), {args.nproc} single-threaded torchrun process(es).

## Setup

- Every variant: the `nano` network, both branches, {args.steps} steps, global batch
  {base['optim']['batch_size']}, {results['height']}x{results['width']} input, Adam lr
  {base['optim']['lr']:g} → {base['optim']['end_lr']:g} (poly 0.9), losses summed every step
  (`loss.schedule: sum`), seed 0 — i.e. `config/model/synthetic_nano.yaml` with a smaller budget.
  Only the ablated switch differs between the runs of a comparison.
- Test sets, rendered fresh from held-out seeds: `test` = {args.test_images} scenes from the
  training camera range (height {STREET_TRAIN_CAMERA.height_m} m, pitch {STREET_TRAIN_CAMERA.pitch_deg} deg);
  `shifted` = {args.test_images // 2} scenes with the camera higher and pitched down (height
  {STREET_SHIFTED_CAMERA_DOWN.height_m} m, pitch {STREET_SHIFTED_CAMERA_DOWN.pitch_deg} deg) + {args.test_images // 2}
  lower and pitched up (height {STREET_SHIFTED_CAMERA_UP.height_m} m, pitch {STREET_SHIFTED_CAMERA_UP.pitch_deg} deg):
  the horizon sits where training never put it.
- Metrics: official per-image metrics (`urcdc_model.metrics`, sky at 80 m excluded), flip TTA.
  T = Transformer branch (the deployed one), CNN = CNN branch.
- Δ < 0 means the switch lowers abs_rel (better). The 95 % CI is a paired bootstrap over the test
  images; "seed noise" is |baseline − baseline_seed1| on the same test set and branch. A verdict of
  "helps"/"hurts" needs the CI to exclude zero *and* |Δ| > seed noise.

## Results

{tables}

## Reading it

{interpretation(results, args)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def interpretation(results: dict, args: argparse.Namespace) -> str:
    _, comparisons = summarize(results)
    lines = []
    for c in comparisons:
        size = f"Δ abs_rel {c['delta']:+.4f} (95 % CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], seed noise {c['seed_noise']:.4f})"
        if c["verdict"] == "no effect beyond noise":
            lines.append(f"- **{c['question']}**: does not show at this budget — {size}.")
        else:
            lines.append(f"- **{c['question']}**: {c['verdict']} — {size}.")
    lines.append(
        f"- Budget caveat: {args.steps} steps on a CPU is a small fraction of the paper's 50 epochs; the "
        "networks are far from converged, and effects the paper reports at convergence (and on real "
        "KITTI/NYU, with ImageNet-pretrained backbones) may be absent or reversed here. One training seed "
        "per variant plus one extra baseline seed is a coarse noise estimate.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.ablation", __doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=220, help="training steps per variant (equal budgets)")
    parser.add_argument("--nproc", type=int, default=2, help="torchrun processes per training run")
    parser.add_argument("--test-images", type=int, default=24, help="scenes per test set")
    parser.add_argument("--output", default="runs/ablation", help="folder for the runs")
    parser.add_argument("--doc", default=str(REPO / "docs" / "ABLATION.md"),
                        help="markdown report to write (default: docs/ABLATION.md of this checkout)")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs in --output instead of retraining")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python -m urcdc_model.ablation " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                      else sys.argv[1:]))
    torch.set_num_threads(1)  # evaluation here; 2 threads on the shared cores were far slower (BENCHMARKS.md)
    start = time.perf_counter()
    results = run(args.steps, args.nproc, Path(args.output), args.test_images, args.reuse)
    rows, comparisons = summarize(results)
    tables = format_tables(rows, comparisons)
    print(tables)
    wall = time.perf_counter() - start
    write_doc(Path(args.doc), command.strip(), results, tables, args, wall)
    (Path(args.output) / "ablation.json").write_text(json.dumps({"rows": rows, "comparisons": comparisons}, indent=1))
    print(f"[ablation] wrote {args.doc} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
