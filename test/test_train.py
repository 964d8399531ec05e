"""The trainer: configs, schedule, a tiny single-process run, NaN guard, exact resume, 2-process torchrun."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from urcdc_model.checkpoints import load_model
from urcdc_model.train import PolyDecay, Trainer
from urcdc_model.training.config import DataSection, TrainConfig
from urcdc_model.training.state import load_training_state

REPO = Path(__file__).resolve().parents[1]

# A network and images small enough that a step takes well under a second on one CPU core.
TINY = {
    "name": "tiny",
    "seed": 3,
    "model": {"variant": "nano", "max_depth": 80.0, "with_cnn": True,
              "overrides": {"embed_dim": 8, "num_heads": [1, 1, 2, 2], "psp_channels": 16, "psp_gn_groups": 8,
                            "crf_dims": [8, 8, 16, 16], "crf_num_heads": [1, 1, 1, 1], "cnn_init_features": 8}},
    "data": {"dataset": "synthetic", "kind": "street", "height": 48, "width": 96, "train_samples": 16,
             "val_samples": 2},
    "optim": {"lr": 1e-3, "end_lr": 1e-4, "batch_size": 2, "total_steps": 6, "grad_clip_norm": 1.0},
    "loss": {"schedule": "alternate"},
    "log": {"log_every": 1, "image_every": 3, "eval_every": 0, "checkpoint_every": 100},
}


def _tiny_config(**section_overrides) -> TrainConfig:
    values = json.loads(json.dumps(TINY))
    for section, changes in section_overrides.items():
        values[section].update(changes)
    return TrainConfig.from_dict(values, source="tiny")


def _losses(output: Path) -> list[tuple[int, float]]:
    lines = (output / "train_log.jsonl").read_text().splitlines()
    return [(record["step"], record["loss"]) for record in map(json.loads, lines)]


@pytest.mark.parametrize("path", sorted((REPO / "config" / "model").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    config = TrainConfig.from_yaml(path)
    config.model.build_config()
    assert config.name == path.stem


def test_paper_configs_use_paper_settings():
    for name, max_depth in (("kitti_large07", 80.0), ("nyu_large07", 10.0)):
        config = TrainConfig.from_yaml(REPO / "config" / "model" / f"{name}.yaml")
        assert (config.model.variant, config.model.max_depth) == ("large07", max_depth)
        assert (config.optim.optimizer, config.optim.lr, config.optim.end_lr, config.optim.poly_power) == \
            ("adam", 2e-5, 2e-6, 0.9)
        assert (config.optim.batch_size, config.optim.epochs, config.loss.schedule) == (4, 50, "alternate")


def test_config_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"optim": {"learning_rate": 1e-4}}))
    with pytest.raises(ValueError, match=r"bad.yaml.*optim.*learning_rate"):
        TrainConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({"model": {"variant": "huge"}}))
    with pytest.raises(ValueError, match=r"bad.yaml.*model.*huge"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def test_poly_schedule_matches_official_formula():
    decay = PolyDecay(total_steps=100, start_lr=2e-5, end_lr=2e-6, power=0.9)
    for step in (0, 1, 50, 99, 100):
        official = (2e-5 - 2e-6) * (1 - step / 100) ** 0.9 + 2e-6
        assert 2e-5 * decay(step) == pytest.approx(official, rel=1e-12)


def test_tiny_run_writes_checkpoint_log_and_loadable_weights(tmp_path):
    trainer = Trainer(_tiny_config(), tmp_path, progress=False, command="pytest tiny")
    trainer.train()
    steps = [step for step, _ in _losses(tmp_path)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(loss) for _, loss in _losses(tmp_path))
    state = load_training_state(tmp_path / "checkpoints" / "last.pt")  # weights_only=True inside
    assert state["step"] == 6 and len(state["rng"]) == 1
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
    model, cfg, meta = load_model(tmp_path / "model.safetensors", with_cnn=True)
    assert (meta["input_height"], meta["input_width"], meta["training_command"]) == (48, 96, "pytest tiny")
    assert cfg.embed_dim == 8 and cfg.with_cnn
    deploy, _, _ = load_model(tmp_path / "model.safetensors", with_cnn=False)
    assert set(deploy(torch.zeros(1, 3, 48, 96))) == {"depth", "confidence"}
    assert "abs_rel" in trainer.last_eval and "cnn/abs_rel" in trainer.last_eval
    assert any((tmp_path / "tensorboard").iterdir())


def test_camera_augmented_run_trains_on_windows_and_records_the_canonical_camera(tmp_path):
    windows = [[32, 64], [48, 48]]
    trainer = Trainer(_tiny_config(data={"cameras": "random", "window_sizes": windows}), tmp_path, progress=False)
    shapes = {tuple(batch["image"].shape[2:]) for batch, _ in zip(trainer.loader, range(8))}
    assert shapes <= {(32, 64), (48, 48)} and len(shapes) == 2
    trainer.train()
    assert all(math.isfinite(loss) for _, loss in _losses(tmp_path))
    _, _, meta = load_model(tmp_path / "model.safetensors", with_cnn=False)
    assert meta["canonical_focal_px"] == pytest.approx(721.5377 * 96 / 1242)    # KITTI's focal at the 96 px width
    assert (meta["input_height"], meta["input_width"]) == (48, 96) and "cameras: random" in meta["dataset"]


def test_whole_frame_batches_reach_the_loader_and_bad_fractions_are_refused(tmp_path):
    trainer = Trainer(_tiny_config(data={"cameras": "random", "window_sizes": [[32, 32]], "whole_frame_fraction": 1.0}),
                      tmp_path, progress=False)
    sizes = {tuple(batch["image"].shape) for batch, _ in zip(trainer.loader, range(4))}
    assert all(size[0] == 1 and size[2:] != (32, 32) for size in sizes)       # one whole network input each
    with pytest.raises(ValueError, match="whole_frame_fraction must be within"):
        _tiny_config(data={"cameras": "random", "whole_frame_fraction": 1.5})
    with pytest.raises(ValueError, match="whole_frame_padding_px must be within"):
        _tiny_config(data={"cameras": "random", "whole_frame_padding_px": -1})
    with pytest.raises(ValueError, match="window_placement must be random or centred"):
        _tiny_config(data={"cameras": "random", "window_placement": "center"})


def test_near_cross_buildings_reach_training_scenes_only_and_bad_ranges_are_refused(tmp_path):
    trainer = Trainer(_tiny_config(data={"cross_building_range_m": [12.0, 20.0]}), tmp_path, progress=False)
    assert trainer.train_set.dataset.cross_building_range_m == (12.0, 20.0)
    assert trainer.val_set.cross_building_range_m == (50.0, 130.0)       # validation scenes stay comparable
    for name in ("cross_building_range_m", "aspect_range", "render_scale_range"):
        for bad in ([20.0], [0.0, 10.0], [30.0, 20.0]):
            with pytest.raises(ValueError, match=f"{name} must be"):
                _tiny_config(data={name: bad})


def test_size_jitter_and_closed_street_share_reach_training_scenes_only(tmp_path):
    trainer = Trainer(_tiny_config(data={"cameras": "random", "network_scale_range": [0.9, 1.1],
                                         "cross_building_probability": 0.8}), tmp_path, progress=False)
    assert trainer.train_set.dataset.network_scale_range == (0.9, 1.1)
    assert trainer.train_set.dataset.cross_building_probability == 0.8
    assert trainer.val_set.network_scale_range == (1.0, 1.0) and trainer.val_set.cross_building_probability == 0.5
    with pytest.raises(ValueError, match="network_scale_range must be"):
        _tiny_config(data={"network_scale_range": [1.2, 0.9]})
    with pytest.raises(ValueError, match="cross_building_probability must be within"):
        _tiny_config(data={"cross_building_probability": 1.5})


def test_the_network_stride_reaches_training_and_validation_frames(tmp_path):
    trainer = Trainer(_tiny_config(data={"cameras": "random", "network_stride": [32, 32]}), tmp_path, progress=False)
    assert trainer.train_set.dataset.network_stride == (32, 32) and trainer.val_set.network_stride == (32, 32)
    for bad in ([32], [0, 32], [16, 128], [16.5, 32]):
        with pytest.raises(ValueError, match="network_stride must be"):
            _tiny_config(data={"network_stride": bad})
    for name, value in (("network_stride", [16, 32]), ("network_scale_range", [0.9, 1.1])):
        with pytest.raises(ValueError, match=f"{name} applies to synthetic training frames only"):
            DataSection(dataset="kitti", **{name: value})


def test_the_random_cameras_aspect_range_reaches_the_camera_sampling(tmp_path):
    trainer = Trainer(_tiny_config(data={"cameras": "random", "aspect_range": [1.3, 2.0]}), tmp_path, progress=False)
    assert trainer.train_set.dataset.cameras.aspect_range == (1.3, 2.0)


def test_a_ray_embedding_can_be_added_when_fine_tuning_from_weights_without_one(tmp_path):
    first = Trainer(_tiny_config(optim={"total_steps": 1}), tmp_path / "plain", progress=False)
    first.train()
    rays = Trainer(_tiny_config(model={"init_checkpoint": str(tmp_path / "plain" / "model.safetensors"),
                                       "overrides": {**TINY["model"]["overrides"], "ray_focal_px": 40.0}}),
                   tmp_path / "rays", progress=False)
    state = rays.model.state_dict()
    assert not state["backbone.ray_embed.weight"].any() and not state["backbone.ray_embed.bias"].any()
    assert torch.equal(state["backbone.patch_embed.proj.weight"],
                       first.model.state_dict()["backbone.patch_embed.proj.weight"])
    rays.train()
    _, cfg, _ = load_model(tmp_path / "rays" / "model.safetensors", with_cnn=False)
    assert cfg.ray_focal_px == 40.0
    faster = Trainer(_tiny_config(model={"overrides": {**TINY["model"]["overrides"], "ray_focal_px": 40.0}},
                                  optim={"ray_embed_lr_scale": 30.0}), tmp_path / "faster", progress=False)
    ray_group = faster.optimizer.param_groups[1]
    assert ray_group["lr"] == pytest.approx(30 * faster.optimizer.param_groups[0]["lr"])
    assert {id(p) for p in ray_group["params"]} == {id(p) for p in faster.model.backbone.ray_embed.parameters()}
    with pytest.raises(ValueError, match="ray_embed_lr_scale"):
        _tiny_config(optim={"ray_embed_lr_scale": 0.0})


def test_fixed_camera_run_records_the_rendered_camera_as_canonical(tmp_path):
    from urcdc_model.data.synthetic import kitti_like_intrinsics

    Trainer(_tiny_config(optim={"total_steps": 1}), tmp_path, progress=False).train()
    _, _, meta = load_model(tmp_path / "model.safetensors", with_cnn=False)
    assert meta["canonical_focal_px"] == pytest.approx(kitti_like_intrinsics(48, 96)[0, 0])


def test_init_checkpoint_starts_fine_tuning_from_those_weights(tmp_path):
    first = Trainer(_tiny_config(optim={"total_steps": 2}), tmp_path / "stage1", progress=False)
    first.train()
    start = tmp_path / "stage1" / "model.safetensors"
    second = Trainer(_tiny_config(model={"init_checkpoint": str(start)}), tmp_path / "stage2", progress=False)
    expected, _, _ = load_model(start, with_cnn=True)
    for key, value in expected.state_dict().items():
        assert torch.equal(second.model.state_dict()[key], value), key
    fresh = Trainer(_tiny_config(), tmp_path / "fresh", progress=False)
    assert any(not torch.equal(fresh.model.state_dict()[k], v) for k, v in expected.state_dict().items())


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    config = _tiny_config()
    Trainer(config, tmp_path / "straight", progress=False).train()
    Trainer(config, tmp_path / "split", stop_at_step=3, progress=False).train()
    assert not (tmp_path / "split" / "model.safetensors").exists()  # stopped, not finished
    Trainer(config, tmp_path / "split", resume=True, progress=False).train()
    assert _losses(tmp_path / "split") == _losses(tmp_path / "straight")
    straight = load_training_state(tmp_path / "straight" / "checkpoints" / "last.pt")
    split = load_training_state(tmp_path / "split" / "checkpoints" / "last.pt")
    for key, value in straight["model"].items():
        assert torch.equal(value, split["model"][key]), key


def test_resume_reproduces_the_uninterrupted_run_with_random_cameras(tmp_path):
    """Random cameras load samples only when the window collate uses them: a resume still matches exactly."""
    config = _tiny_config(data={"cameras": "random", "whole_frame_fraction": 0.5})
    straight = Trainer(config, tmp_path / "straight", progress=False)
    assert straight.train_set.deferred
    straight.train()
    Trainer(config, tmp_path / "split", stop_at_step=3, progress=False).train()
    Trainer(config, tmp_path / "split", resume=True, progress=False).train()
    assert _losses(tmp_path / "split") == _losses(tmp_path / "straight")


def test_nan_guard_skips_the_update_and_aborts_when_it_persists(tmp_path):
    trainer = Trainer(_tiny_config(optim={"max_nonfinite_steps": 3}), tmp_path, progress=False)
    real_losses = trainer.compute_losses

    def poisoned(outputs, depth_gt):
        terms = real_losses(outputs, depth_gt)
        if trainer.step >= 1:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    trainer.compute_losses = poisoned
    with pytest.raises(FloatingPointError, match="3 consecutive"):
        trainer.train()
    assert trainer.skipped_steps == 3
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_torchrun_two_processes(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    values = json.loads(json.dumps(TINY))
    values["optim"]["total_steps"] = 3
    config_path.write_text(yaml.safe_dump(values))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "urcdc_model.train", "--config", str(config_path), "--output", str(tmp_path / "out"),
         "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert [step for step, _ in _losses(tmp_path / "out")] == [1, 2, 3]  # rank 0 alone writes the log
    state = load_training_state(tmp_path / "out" / "checkpoints" / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert (tmp_path / "out" / "model.safetensors").is_file()
