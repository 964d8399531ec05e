"""python -m urcdc_model.evaluate: saved predictions against real GT, and the model path on held-out scenes."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil

import cv2
import numpy as np
import pytest
import torch

from urcdc_model.evaluate import main
from urcdc_model.metrics import METRIC_NAMES

KITTI_FRAMES = ("0000000005", "0000000050", "0000000100")


def read_png_m(path, scale):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / scale


def run(argv, tmp_path, capsys) -> dict:
    out = tmp_path / "metrics.json"
    assert main(argv + ["--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Computing errors for" in printed and all(name in printed for name in METRIC_NAMES)
    metrics = json.loads(out.read_text())
    assert list(metrics) == list(METRIC_NAMES)
    return metrics


def save_kitti_predictions(gt_dir, pred_dir, from_gt_m) -> None:
    """One .npy prediction per real KITTI frame, made from its ground truth (metres)."""
    pred_dir.mkdir()
    for frame in KITTI_FRAMES:
        np.save(pred_dir / f"{frame}.npy", from_gt_m(read_png_m(gt_dir / f"{frame}.png", 256.0)))


def test_kitti_predictions_scaled_by_1_1(shared_data, tmp_path, capsys):
    gt_dir = shared_data / "kitti_depth_annotated" / "depth"
    pred_dir = tmp_path / "pred"
    save_kitti_predictions(gt_dir, pred_dir, lambda gt: gt * 1.1)
    metrics = run(["--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--dataset", "kitti", "--crop", "eigen",
                   "--max-depth", "100"], tmp_path, capsys)
    assert metrics["abs_rel"] == pytest.approx(0.1, abs=1e-6) and metrics["d1"] == 1.0


def test_gt_against_itself_as_png_predictions(shared_data, tmp_path, capsys):
    gt_dir = shared_data / "kitti_depth_annotated" / "depth"
    pred_dir = tmp_path / "pred"
    shutil.copytree(gt_dir, pred_dir)
    metrics = run(["--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--dataset", "kitti"], tmp_path, capsys)
    assert metrics["abs_rel"] == 0 and metrics["d1"] == 1 and metrics["rms"] == 0


def test_nyu_predictions_match_sync_depth_by_stem(shared_data, tmp_path, capsys):
    gt_dir = shared_data / "nyu" / "depth"
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for path in gt_dir.glob("sync_depth_*.png"):
        frame = path.stem.replace("sync_depth_", "")
        np.save(pred_dir / f"rgb_{frame}.npy", read_png_m(path, 1000.0))
    metrics = run(["--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--dataset", "nyu"], tmp_path, capsys)
    assert metrics["abs_rel"] == 0 and metrics["d1"] == 1


def test_kb_cropped_predictions_are_placed_back(shared_data, tmp_path, capsys):
    gt_dir = shared_data / "kitti_depth_annotated" / "depth"
    pred_dir = tmp_path / "pred"
    save_kitti_predictions(gt_dir, pred_dir, lambda gt: gt[375 - 352:, 13:13 + 1216])
    # the Garg crop lies inside the KB window, so the padded prediction is perfect there
    metrics = run(["--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--dataset", "kitti", "--crop", "garg"],
                  tmp_path, capsys)
    assert metrics["abs_rel"] == 0


def test_directory_errors_name_the_file(shared_data, tmp_path, capsys):
    gt_dir = shared_data / "kitti_depth_annotated" / "depth"
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    np.save(pred_dir / "0000000005.npy", np.ones((10, 10), np.float32))
    argv = ["--pred-dir", str(pred_dir), "--gt-dir", str(gt_dir), "--dataset", "kitti"]
    assert "no prediction for 2 ground-truth" in err_of(capsys, argv)
    for frame in KITTI_FRAMES[1:]:
        np.save(pred_dir / f"{frame}.npy", np.ones((375, 1242), np.float32))
    assert "0000000005.npy: prediction is 10x10 but its ground truth is 375x1242" in err_of(capsys, argv)
    with pytest.raises(SystemExit) as usage:   # bad arguments: argparse's exit code 2 and usage line
        main(["--pred-dir", str(pred_dir), "--dataset", "kitti"])
    assert usage.value.code == 2 and "needs --gt-dir" in capsys.readouterr().err


def err_of(capsys, argv) -> str:
    """The one error line a failing run prints (exit code 1)."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_model_on_held_out_synthetic_scenes(tmp_path, capsys):
    from urcdc_model.checkpoints import save_model
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False)
    checkpoint = save_model(tmp_path / "nano.safetensors", URCDCDepth(cfg), cfg,
                            meta={"input_height": 64, "input_width": 192})
    metrics = run(["--checkpoint", str(checkpoint), "--dataset", "synthetic", "--frames", "2", "--no-flip-tta"],
                  tmp_path, capsys)
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0 <= metrics["d1"] <= metrics["d2"] <= metrics["d3"] <= 1
    assert torch.is_grad_enabled(), "evaluating in-process must not switch autograd off for the caller"


def test_default_model_meets_the_accuracy_target_on_held_out_scenes(tmp_path, capsys):
    """Issue 4's bar (abs_rel <= 0.12 on fresh procedural scenes), on the first 40 of the 200 test
    scenes so it stays quick; guards the committed weights and the whole eval path."""
    metrics = run(["--checkpoint", "default", "--dataset", "synthetic", "--frames", "40"], tmp_path, capsys)
    assert metrics["abs_rel"] <= 0.12 and metrics["d1"] >= 0.85


@pytest.mark.parametrize("camera_name", ["VGA", "KITTI-size wide"])
def test_default_model_is_metric_on_other_cameras(camera_name):
    """What issue 12's retrain bought, as a guard on the committed weights: on cameras it was not trained
    for, depth stays metric (median pred/GT within 10 %) and accurate (abs_rel <= 0.2). The KITTI-camera-only
    default failed both (VGA abs_rel 0.42, wide 0.55)."""
    from urcdc_model.camera_benchmark import CAMERAS, score_camera
    from urcdc_model.deploy.runtime import DepthRuntime

    camera = next(c for c in CAMERAS if c.name == camera_name)
    runtime = DepthRuntime.from_path("default", backend="torch", warmup_runs=0)
    score = score_camera(runtime, camera, num_frames=4)
    assert score.abs_rel <= 0.2 and abs(score.median_pred_over_gt - 1.0) <= 0.1, score


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--dataset", "synthetic",
                 "--frames", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.safetensors: model file not found" in err and "\n" not in err


# --- through the runtime with each frame's camera; the multi-camera benchmark ------------------------


def test_kitti_layout_frames_are_scored_through_the_runtime_with_their_calibration(tmp_path, capsys):
    """A drive rendered by a wide camera (f = 250 px, not KITTI's field of view): evaluate's numbers are
    DepthRuntime.infer(rgb, K from the calibration)'s, not the fallback's."""
    from urcdc_model.data.calib import write_raw_calibration
    from urcdc_model.data.kitti import KittiDepthDataset
    from urcdc_model.deploy.runtime import DepthRuntime
    from urcdc_model.evaluate import eval_frames, kitti_split_from_drives
    from urcdc_model.metrics import MetricAccumulator, compute_depth_metrics
    from urcdc_model.data.synthetic import write_kitti_drive

    k = np.array([[250.0, 0, 230.0], [0, 250.0, 75.0], [0, 0, 1]])
    write_raw_calibration(tmp_path / "calib", k, (160, 480))
    write_kitti_drive(tmp_path / "drives", num_frames=2, calib_dir=tmp_path / "calib")
    metrics = run(["--checkpoint", "default", "--dataset", "kitti", "--data-root", str(tmp_path / "drives"),
                   "--no-kb-crop", "--no-flip-tta"], tmp_path, capsys)

    runtime = DepthRuntime.from_path("default", backend="torch", warmup_runs=0)
    dataset = KittiDepthDataset(tmp_path / "drives", tmp_path / "drives", kitti_split_from_drives(tmp_path / "drives"),
                                mode="eval", kb_crop_eval=False)
    with_k, fallback = MetricAccumulator(), MetricAccumulator()
    for rgb, gt, intrinsics in eval_frames(dataset):
        assert intrinsics[0, 0] == 250.0 and rgb.shape == (160, 480, 3)
        with_k.add(compute_depth_metrics(gt, runtime.infer(rgb, intrinsics)[0], dataset="kitti"))
        fallback.add(compute_depth_metrics(gt, runtime.infer(rgb)[0], dataset="kitti"))
    assert metrics == pytest.approx(with_k.mean(), rel=1e-6)
    assert metrics["abs_rel"] != pytest.approx(fallback.mean()["abs_rel"], rel=1e-3)


def test_multi_camera_benchmark_cli_prints_and_writes_the_table(tmp_path, capsys, monkeypatch):
    """Small cameras keep it fast; the real list is checked in test_camera_benchmark.py."""
    from urcdc_model import camera_benchmark
    from urcdc_model.camera_benchmark import BenchmarkCamera

    cameras = (BenchmarkCamera("KITTI", 94, 311, 180.4), BenchmarkCamera("QVGA", 60, 80, 62.5),
               BenchmarkCamera("strip", 75, 256, 150.0))
    monkeypatch.setattr(camera_benchmark, "CAMERAS", cameras)
    out_json, out_md = tmp_path / "cams.json", tmp_path / "cams.md"
    assert main(["--checkpoint", "default", "--dataset", "synthetic", "--cameras", "multi", "--frames", "1",
                 "--no-flip-tta", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in progress] == ["KITTI", "QVGA", "strip"]
    table = captured.out
    assert "| camera |" in table and "| QVGA | 80x60 | 62.5 |" in table and "meet issue 12's criteria" in table
    result = json.loads(out_json.read_text())
    assert [c["name"] for c in result["cameras"]] == ["KITTI", "QVGA", "strip"]
    assert result["num_frames"] == 1 and result["cameras"][0]["abs_rel_over_kitti"] == 1.0
    for camera in result["cameras"]:
        assert 0 < camera["abs_rel"] < 5 and 0.1 < camera["median_pred_over_gt"] < 10
        assert camera["pass"] == (not camera["failed"])
    assert result["all_pass"] == all(c["pass"] for c in result["cameras"])
    assert table.strip().splitlines()[0] in out_md.read_text()


def test_multi_camera_benchmark_needs_synthetic_street_scenes(tmp_path, capsys):
    for argv, says in ((["--dataset", "kitti", "--data-root", str(tmp_path)], "--cameras multi runs a model"),
                       (["--dataset", "synthetic", "--kind", "indoor"], "--kind street")):
        with pytest.raises(SystemExit) as usage:
            main(["--checkpoint", "default", *argv, "--cameras", "multi"])
        assert usage.value.code == 2 and says in capsys.readouterr().err
