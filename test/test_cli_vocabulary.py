"""One vocabulary across the command-line tools: a flag has one name, one meaning and one help text everywhere,
``--help`` names the tool as the README runs it, and old spellings still work without being shown."""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from urcdc_model import cli

# module -> how the README runs it (its --help must say the same)
CLIS = {
    "urcdc_model.predict": "python -m urcdc_model.predict",
    "urcdc_model.evaluate": "python -m urcdc_model.evaluate",
    "urcdc_model.export": "python -m urcdc_model.export",
    "urcdc_model.deploy.bench": "python -m urcdc_model.bench",
    "urcdc_model.deploy.precision_bench": "python -m urcdc_model.deploy.precision_bench",
    "urcdc_model.deploy.gpu_check": "python -m urcdc_model.deploy.gpu_check",
    "urcdc_model.analysis.__main__": "python -m urcdc_model.analysis",
    "urcdc_model.analysis.dgr_probe": "python -m urcdc_model.analysis.dgr_probe",
    "urcdc_model.uncertainty_check": "python -m urcdc_model.uncertainty_check",
    "urcdc_model.ablation": "python -m urcdc_model.ablation",
    "urcdc_model.train": "python -m urcdc_model.train",
    "urcdc_model.average_weights": "python -m urcdc_model.average_weights",
    "urcdc_ros.kitti_to_bag": "python -m urcdc_ros.kitti_to_bag",
    "urcdc_ros.bag_bench": "python -m urcdc_ros.bag_bench",
    "urcdc_ros.demo": "python -m urcdc_ros.demo",
    "urcdc_ros.node_bench": "python -m urcdc_ros.node_bench",
    "urcdc_ros.dds_loss_probe": "python -m urcdc_ros.dds_loss_probe",
}

# flag -> the help text(s) it must start with wherever it appears
SHARED_MEANINGS = {
    "--checkpoint": (cli.CHECKPOINT_HELP, cli.RUNTIME_MODEL_HELP),
    "--model-max-depth": (cli.MODEL_MAX_DEPTH_HELP,),
    "--no-flip-tta": (cli.NO_FLIP_TTA_HELP,),
    "--input-size": (cli.INPUT_SIZE_HELP,),
    "--backend": (cli.BACKEND_HELP,),
    "--num-threads": (cli.NUM_THREADS_HELP,),
    "--no-progress": (cli.NO_PROGRESS_HELP,),
    "--max-frames": (cli.MAX_FRAMES_HELP,),
    "--json": (cli.JSON_HELP,),
    "--max-depth": (cli.EVAL_MAX_DEPTH_HELP,),  # only where ground truth is scored
    "--crop": (cli.EVAL_CROP_HELP,),
}
# old spellings: hidden from --help, still parsed with the same meaning
HIDDEN_ALIASES = {
    "urcdc_model.predict": [(["--no-flip"], "no_flip_tta", True), (["--max-depth", "10"], "model_max_depth", 10.0)],
    "urcdc_model.evaluate": [(["--num-frames", "5"], "frames", 5)],
    "urcdc_model.export": [(["--max-depth", "10"], "model_max_depth", 10.0)],
    "urcdc_model.deploy.bench": [(["--sizes", "96x320"], "input_sizes", [(96, 320)]),
                                 (["--threads", "2"], "num_threads", 2)],
    "urcdc_model.analysis.__main__": [(["--size", "96x320"], "input_size", (96, 320))],
    "urcdc_ros.kitti_to_bag": [(["--quiet"], "no_progress", True)],
    "urcdc_ros.bag_bench": [(["--report", "out"], "output", Path("out"))],
    "urcdc_ros.node_bench": [(["--model", "x.onnx"], "checkpoint", "x.onnx")],
}
REQUIRED_ARGS = {
    "urcdc_model.predict": ["--image", "i.png", "--output", "o.npy"],
    "urcdc_model.evaluate": ["--dataset", "synthetic"],
    "urcdc_model.export": ["--output", "o.onnx"],
    "urcdc_model.analysis.__main__": ["--output", "out"],
    "urcdc_ros.kitti_to_bag": ["--drive", "d", "--output", "o"],
    "urcdc_ros.bag_bench": ["--bag", "b"],
}
_DEFAULT_MENTION = re.compile(r"\(default\b|\bdefault:")


def parser_of(module: str) -> argparse.ArgumentParser:
    return importlib.import_module(module).build_parser()


def visible_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions if action.help != argparse.SUPPRESS
            for option in action.option_strings}


@pytest.mark.parametrize("module", CLIS)
def test_help_names_the_tool_as_the_readme_runs_it(module):
    parser = parser_of(module)
    assert parser.prog == CLIS[module]
    assert parser.format_usage().startswith(f"usage: {CLIS[module]} ")


@pytest.mark.parametrize("module", CLIS)
def test_help_shows_each_default_once_and_never_for_required_or_unset_options(module):
    parser = parser_of(module)
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS):
            continue
        shown = formatter._get_help_string(action)
        assert len(_DEFAULT_MENTION.findall(shown)) <= 1, f"{module} {action.option_strings}: {shown}"
        if action.required:
            assert not _DEFAULT_MENTION.search(shown), f"{module} {action.option_strings}: {shown}"


def test_shared_flags_have_one_meaning_everywhere():
    seen: dict[str, list[str]] = {}
    for module in CLIS:
        for option, action in visible_actions(parser_of(module)).items():
            if option in SHARED_MEANINGS:
                assert action.help.startswith(SHARED_MEANINGS[option]), f"{module} {option}: {action.help!r}"
                seen.setdefault(option, []).append(module)
    # each shared flag really is shared, so the comparison above compared something
    for option in ("--checkpoint", "--model-max-depth", "--no-flip-tta", "--input-size", "--max-frames",
                   "--no-progress", "--json", "--max-depth", "--num-threads"):
        assert len(seen.get(option, [])) >= 2, f"{option} only in {seen.get(option)}"
    assert set(seen["--max-depth"]) == {"urcdc_model.evaluate", "urcdc_ros.bag_bench"}  # ground-truth cap only
    assert {"urcdc_model.predict", "urcdc_model.evaluate", "urcdc_model.export"} <= set(seen["--model-max-depth"])


def test_the_model_is_always_checkpoint_and_defaults_to_the_embedded_one():
    for module in CLIS:
        actions = visible_actions(parser_of(module))
        assert "--model" not in actions, module
        if "--checkpoint" in actions:
            assert actions["--checkpoint"].default == "default", module


def test_old_spellings_are_hidden_and_mean_the_same():
    retired = {"--no-flip", "--sizes", "--threads", "--size", "--quiet", "--report", "--model", "--num-frames",
               "--height", "--width", "--verbose", "--benchmarks-md"}
    for module in CLIS:
        shown = set(visible_actions(parser_of(module)))
        assert not shown & retired, f"{module} still shows {shown & retired}"
        assert not (module not in ("urcdc_model.evaluate", "urcdc_ros.bag_bench") and "--max-depth" in shown), module
    for module, cases in HIDDEN_ALIASES.items():
        parser = parser_of(module)
        for argv, dest, value in cases:
            args = parser.parse_args(REQUIRED_ARGS.get(module, []) + argv)
            assert getattr(args, dest) == value, f"{module} {argv}"


def test_every_tool_that_writes_a_result_calls_the_place_output():
    for module in ("urcdc_model.predict", "urcdc_model.export", "urcdc_model.analysis.__main__",
                   "urcdc_model.ablation", "urcdc_model.train", "urcdc_ros.kitti_to_bag", "urcdc_ros.bag_bench",
                   "urcdc_ros.demo"):
        assert "--output" in visible_actions(parser_of(module)), module


def test_bench_writes_only_where_told(tmp_path, monkeypatch):
    """--write FILE writes FILE; without it nothing is written (not the checkout's docs/BENCHMARKS.md)."""
    from urcdc_model.deploy import bench

    args = bench.build_parser().parse_args([])
    assert args.write is None
    written = []
    monkeypatch.setattr(bench, "write_benchmarks_md", lambda path, title, body: written.append(path))
    rows = {"torch": bench.BenchRow("torch", (64, 64), [10.0], [9.0], [20.0])}
    monkeypatch.setattr(bench, "load_variant", lambda *a, **k: object())
    monkeypatch.setattr(bench, "benchmark", lambda *a, **k: rows)
    monkeypatch.setattr(bench, "_bench_frame", lambda h, w: None)
    assert bench.run_bench(bench.build_parser().parse_args(["--backends", "torch"]), []) == 0
    assert written == []
    target = tmp_path / "sub" / "bench.md"
    assert bench.run_bench(bench.build_parser().parse_args(["--backends", "torch", "--write", str(target)]), []) == 0
    assert written == [target]
