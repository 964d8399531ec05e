"""Weight averaging of two checkpoints of one model (how the embedded default's last stage was made)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from urcdc_model.average_weights import main
from urcdc_model.checkpoints import read_checkpoint, save_model
from urcdc_model.models import ModelConfig, URCDCDepth


def _checkpoint(path, seed: int, variant: str = "nano", meta: dict | None = None):
    torch.manual_seed(seed)
    cfg = dataclasses.replace(ModelConfig.from_name(variant), with_cnn=False, max_depth=80.0)
    return save_model(path, URCDCDepth(cfg), cfg, meta=meta or {})


def test_the_average_is_the_weighted_sum_and_keeps_b_s_config_and_metadata(tmp_path, capsys):
    a = _checkpoint(tmp_path / "a.safetensors", 0)
    b = _checkpoint(tmp_path / "b.safetensors", 1, meta={"canonical_focal_px": 185.9, "steps": 7})
    out = tmp_path / "c.safetensors"
    assert main([str(a), str(b), "--weight", "0.25", "--output", str(out)]) == 0
    assert "0.75 x" in capsys.readouterr().out
    state_a, _, _ = read_checkpoint(a)
    state_b, config_b, _ = read_checkpoint(b)
    state_c, config_c, meta_c = read_checkpoint(out)
    assert config_c == config_b and meta_c["canonical_focal_px"] == 185.9 and meta_c["steps"] == 7
    assert meta_c["weight_average"]["weight_b"] == 0.25 and meta_c["weight_average"]["b"] == "b.safetensors"
    for key, value in state_c.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * state_a[key] + 0.25 * state_b[key])
        else:  # index tables: the same in both
            assert torch.equal(value, state_b[key])
    assert any(not torch.equal(state_c[k], state_b[k]) for k in state_c)


@pytest.mark.parametrize("problem", ["other_model", "weight"])
def test_bad_inputs_are_one_line(tmp_path, capsys, problem):
    a = _checkpoint(tmp_path / "a.safetensors", 0, variant="tiny07" if problem == "other_model" else "nano")
    b = _checkpoint(tmp_path / "b.safetensors", 1)
    weight = "1.5" if problem == "weight" else "0.5"
    assert main([str(a), str(b), "--weight", weight, "--output", str(tmp_path / "c.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert ("not the same model" if problem == "other_model" else "within [0, 1]") in err
    assert not (tmp_path / "c.safetensors").exists()


def test_a_checkpoint_without_b_s_ray_embedding_counts_as_zeros_there(tmp_path):
    """B fine-tuned from A with a ray embedding added (zero-initialised): the average needs no script."""
    a = _checkpoint(tmp_path / "a.safetensors", 0)
    torch.manual_seed(1)
    cfg_b = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False, max_depth=80.0, ray_focal_px=185.9)
    model_b = URCDCDepth(cfg_b)
    torch.nn.init.normal_(model_b.backbone.ray_embed.weight)            # trained: no longer zero
    b = save_model(tmp_path / "b.safetensors", model_b, cfg_b, meta={})
    out = tmp_path / "c.safetensors"
    assert main([str(a), str(b), "--weight", "0.25", "--output", str(out)]) == 0
    state_a, _, _ = read_checkpoint(a)
    state_b, _, _ = read_checkpoint(b)
    state_c, _, _ = read_checkpoint(out)
    assert "backbone.ray_embed.weight" not in state_a
    torch.testing.assert_close(state_c["backbone.ray_embed.weight"], 0.25 * state_b["backbone.ray_embed.weight"])
    key = "backbone.patch_embed.proj.weight"
    torch.testing.assert_close(state_c[key], 0.75 * state_a[key] + 0.25 * state_b[key])
    # the other way round (B lacks what A has) still is not the same model
    assert main([str(b), str(a), "--output", str(tmp_path / "d.safetensors")]) == 1
