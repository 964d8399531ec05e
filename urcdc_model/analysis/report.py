"""report.json (every number) and report.md (tables, figures, plain statements of what was measured)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .figures import write_figures
from .run import FigureData


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _sparse_section(numbers: dict, figure_names: dict) -> list[str]:
    lines = [
        "## 1. Sparse-input response",
        "",
        "Only a random fraction of pixels is kept; the rest are set to the dataset mean (zero after "
        f"ImageNet normalisation). {numbers['options']['masks_per_fraction']} random masks per image and "
        "fraction, the same masks for every branch. Error = mean absolute relative difference (abs-rel) "
        "against the branch's own full-image depth, and against ground truth where it exists.",
        "",
    ]
    for group, data in numbers["sparse_response"].items():
        branches = list(data["abs_rel_vs_full_prediction"])
        header = ["pixels kept"] + [f"{b} vs own full" for b in branches]
        if data["abs_rel_vs_gt"]:
            header += [f"{b} vs GT" for b in branches]
        rows = []
        for i, fraction in enumerate(data["keep_fractions"]):
            row = [f"{fraction * 100:g} %"] + [data["abs_rel_vs_full_prediction"][b][i] for b in branches]
            if data["abs_rel_vs_gt"]:
                row += [data["abs_rel_vs_gt"][b][i] for b in branches]
            rows.append(row)
        lines += [f"**{group}**", ""] + _table(header, rows)
        lowest = data["keep_fractions"][0]
        statement = ", ".join(
            f"{b} {data['abs_rel_vs_full_prediction'][b][0]:.3f}" for b in branches
        )
        lines += [f"At {lowest * 100:g} % of pixels kept, abs-rel against the own full-image depth: {statement}.", ""]
    lines += [f"![sparse response]({figure_names['sparse_response']})", "",
              f"![sparse examples]({figure_names['sparse_examples']})", ""]
    return lines


def _attribution_section(numbers: dict, figure_names: dict) -> list[str]:
    options = numbers["options"]
    lines = [
        "## 2. Receptive reliance (input-gradient attribution)",
        "",
        f"{options['targets_per_image']} target pixels per image (away from the border, on valid GT where "
        "there is GT). Attribution of input pixel u = sum over RGB of |d depth(target) / d image(u)|. "
        f"Top-k = the {options['top_k_fraction'] * 100:g} % most influential pixels; r50 / r90 = radius "
        "around the target holding 50 % / 90 % of the attribution mass. The uniform row is what an "
        "attribution spread evenly over the image would give (a global-context ceiling).",
        "",
    ]
    for group, data in numbers["attribution"].items():
        rows = [[b, v["topk_mean_px"], v["topk_median_px"], v["r50_px"], v["r90_px"]]
                for b, v in data["branches"].items()]
        uniform = data["uniform_reference"]
        rows.append(["uniform (reference)", uniform["topk_mean_px"], None, uniform["r50_px"], uniform["r90_px"]])
        lines += [f"**{group}** ({data['targets']} targets, top-k = {data['top_k_pixels']} px)", ""]
        lines += _table(["branch", "top-k mean dist (px)", "top-k median (px)", "r50 (px)", "r90 (px)"], rows)
        if "cnn_own_input_share" in data:
            lines += [
                "The CNN branch sees the picture twice: through its own input and through the Swin features "
                "the coupling units hand it (detached in training, but a real dependency at inference; the "
                "attribution above includes both). Share of its attribution mass through its own input: "
                f"{data['cnn_own_input_share']:.2f} (the rest through the coupling units).",
                "",
            ]
    lines += [f"![attribution maps]({figure_names['attribution_maps']})", "",
              f"![attribution radius]({figure_names['attribution_radius']})", ""]
    return lines


def _continuity_section(numbers: dict, figure_names: dict, dgr_note: str) -> list[str]:
    lines = [
        "## 3. Depth-gradient continuity",
        "",
        "First- and second-order finite differences of the prediction against those of GT, only where "
        "every pixel of the stencil has GT (so sparse LiDAR GT contributes little). In metres per pixel "
        "and on log depth. Edge-aware smoothness (monodepth2's, on mean-normalised inverse depth, lower "
        "= smoother where the image is smooth) needs no GT.",
        "",
        f"**With and without DGR:** {dgr_note}",
        "",
    ]
    keys = ["abs_rel", "grad1_m_per_px", "grad2_m_per_px2", "grad1_log", "grad2_log", "edge_aware_smoothness"]
    for group, data in numbers["continuity"].items():
        rows = [[name] + [values.get(k) for k in keys] for name, values in data.items()]
        lines += [f"**{group}**", ""]
        lines += _table(["model / branch", "abs-rel", "∇d error (m/px)", "∇²d error (m/px²)", "∇log d error",
                         "∇²log d error", "edge-aware smoothness"], rows)
    lines += _paired_dgr_lines(numbers)
    lines += [f"![gradient maps]({figure_names['gradient_maps']})", ""]
    return lines


def _paired_dgr_lines(numbers: dict) -> list[str]:
    """Per-frame wins of each model over the same weights without DGR: means hide how consistent a change is."""
    lines = []
    for group, rows in numbers.get("continuity_per_frame", {}).items():
        for key, bypassed in rows.items():
            if " without DGR/" not in key:
                continue
            with_dgr = rows[key.replace(" without DGR/", "/")]
            parts = []
            for metric in ("abs_rel", "grad1_log", "grad2_log"):
                pairs = [(a[metric], b[metric]) for a, b in zip(with_dgr, bypassed) if metric in a and metric in b]
                if pairs:
                    better = sum(a < b for a, b in pairs)
                    parts.append(f"{metric} lower on {better}/{len(pairs)}")
            if parts:
                lines.append(f"- {group}, `{key.replace(' without DGR/', '/')}` vs without DGR, per frame: "
                             + "; ".join(parts))
    return (["With vs without DGR, frame by frame:", ""] + lines + [""]) if lines else []


def write_report(
    numbers: dict,
    figures: FigureData,
    output_dir: str | Path,
    title_details: dict[str, str],
    dgr_note: str,
    command: str,
) -> Path:
    """Write PNGs, report.json and report.md into output_dir; returns the report.md path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    figure_names = write_figures(numbers, figures, output_dir)
    numbers = {**numbers, "model": title_details, "dgr_comparison": dgr_note, "figures": figure_names,
               "command": command}
    (output_dir / "report.json").write_text(json.dumps(numbers, indent=1, default=_json_default) + "\n")
    frames = numbers["frames"]
    groups = sorted({f["group"] for f in frames})
    lines = [
        "# Sparse-pixel analysis of the Transformer and CNN branches",
        "",
        "Generated by `python -m urcdc_model.analysis`; all numbers are in `report.json`.",
        "",
    ]
    lines += [f"- **{key}**: {value}" for key, value in title_details.items()]
    for group in groups:
        members = [f for f in frames if f["group"] == group]
        gt = [f["gt_valid_fraction"] for f in members if f["gt_valid_fraction"] is not None]
        gt_text = f", GT on {np.mean(gt) * 100:.0f} % of pixels" if gt else ", no GT"
        lines.append(f"- **frames [{group}]**: {len(members)} at {members[0]['width']}x{members[0]['height']}"
                     f"{gt_text} ({', '.join(f['name'] for f in members)})")
    timings = numbers["timings_s"]
    lines += [f"- **runtime**: sparse {timings['sparse_s']:.0f} s, attribution {timings['attribution_s']:.0f} s, "
              f"continuity {timings['continuity_s']:.0f} s (CPU)", f"- **command**: `{command}`", ""]
    lines += _sparse_section(numbers, figure_names)
    lines += _attribution_section(numbers, figure_names)
    lines += _continuity_section(numbers, figure_names, dgr_note)
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value)}")
