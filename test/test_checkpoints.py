"""Weight loading and saving: our safetensors, official checkpoint formats, Swin ImageNet init, errors."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from urcdc_model import checkpoints
from urcdc_model.checkpoints import (CheckpointError, infer_config, load_model, load_state_dict, load_swin_imagenet,
                                     read_checkpoint, save_model)
from urcdc_model.models import URCDCDepth, build_model


@pytest.fixture(scope="module")
def nano_two_branch() -> URCDCDepth:
    torch.manual_seed(0)
    model = build_model("nano", max_depth=10.0, with_cnn=True).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics so that loading them matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))


def _depth(model: URCDCDepth, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(image)["depth"]


def test_safetensors_round_trip_keeps_weights_config_and_meta(tmp_path, nano_two_branch, image):
    path = save_model(tmp_path / "m.safetensors", nano_two_branch, nano_two_branch.cfg,
                      meta={"input_height": 176, "input_width": 576})
    for with_cnn in (True, False):
        model, cfg, meta = load_model(path, with_cnn=with_cnn)
        assert cfg == dataclasses.replace(nano_two_branch.cfg, with_cnn=with_cnn)
        assert meta == {"input_height": 176, "input_width": 576}
        assert not model.training
        assert torch.equal(_depth(model, image), _depth(nano_two_branch, image))


@pytest.mark.parametrize("wrapper", ["model", "state_dict", None])
def test_official_checkpoint_formats_load_and_infer_the_variant(tmp_path, nano_two_branch, image, wrapper):
    state = {"module." + k: v for k, v in nano_two_branch.state_dict().items()}  # DataParallel naming
    # what the official trainer saves next to the weights, numpy array included
    extras = {"global_step": 3, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
              "best_eval_measures_lower_better": torch.zeros(6), "best_eval_steps": np.zeros(9, dtype=np.int32)}
    payload = {wrapper: state, **extras} if wrapper else state
    path = tmp_path / "model_kittieigen.ckpt"
    torch.save(payload, path)
    model, cfg, meta = load_model(path, max_depth=10.0)
    assert cfg.name == "nano" and not cfg.with_cnn and meta == {}
    assert torch.equal(_depth(model, image), _depth(nano_two_branch, image))


@pytest.mark.parametrize("name", ["tiny07", "base07", "large07"])
def test_infer_config_recognises_official_variants(name):
    with torch.device("meta"):
        state = build_model(name, with_cnn=True).state_dict()
    cfg = infer_config(state, max_depth=10.0)
    assert (cfg.name, cfg.with_cnn, cfg.max_depth) == (name, True, 10.0)
    deploy_state = {k: v for k, v in state.items() if not checkpoints.is_cnn_key(k)}
    assert infer_config(deploy_state).with_cnn is False


def test_deploy_load_is_strict_on_transformer_keys(nano_two_branch):
    deploy = build_model("nano", with_cnn=False)
    state = dict(nano_two_branch.state_dict())
    load_state_dict(deploy, state)  # CNN keys ignored
    missing = {k: v for k, v in state.items() if k != "crf0.norm_crf.weight"}
    with pytest.raises(CheckpointError, match=r"missing 1: crf0\.norm_crf\.weight"):
        load_state_dict(deploy, missing)
    extra = dict(state, **{"crf9.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected 1: crf9\.weight"):
        load_state_dict(deploy, extra)
    wrong = dict(state, **{"disp_head1.conv1.bias": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"shape-mismatched 1: disp_head1\.conv1\.bias"):
        load_state_dict(deploy, wrong)


def test_two_branch_load_of_deploy_only_checkpoint_is_refused(tmp_path):
    deploy = build_model("nano", with_cnn=False)
    path = save_model(tmp_path / "deploy.safetensors", deploy, deploy.cfg)
    with pytest.raises(CheckpointError, match="only the Transformer branch"):
        load_model(path, with_cnn=True)


def test_corrupt_and_missing_files_give_clear_errors(tmp_path, nano_two_branch):
    with pytest.raises(FileNotFoundError, match="nope.ckpt: checkpoint file not found"):
        load_model(tmp_path / "nope.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(CheckpointError, match="garbage.ckpt: not a readable PyTorch checkpoint"):
        load_model(garbage)
    good = save_model(tmp_path / "good.safetensors", nano_two_branch, nano_two_branch.cfg)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors: not a readable safetensors file"):
        load_model(truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(CheckpointError, match="backbone.patch_embed.proj.weight"):
        load_model(foreign)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f)
    with pytest.raises(CheckpointError, match="evil.pth"):
        read_checkpoint(path)


def test_default_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", tmp_path / "default.safetensors")
    with pytest.raises(FileNotFoundError, match="default.safetensors: the embedded default model is missing"):
        load_model("default")
    model = build_model("nano", with_cnn=False)
    save_model(tmp_path / "default.safetensors", model, model.cfg, meta={"input_height": 176, "input_width": 576})
    loaded, cfg, meta = load_model("default")
    assert cfg.name == "nano" and meta["input_width"] == 576


def test_swin_imagenet_checkpoint_initialises_the_backbone(tmp_path):
    torch.manual_seed(0)
    source = build_model("nano", with_cnn=False).backbone
    swin = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("norm")}
    swin.update({"norm.weight": torch.ones(192), "norm.bias": torch.zeros(192), "head.weight": torch.zeros(10, 192),
                 "head.bias": torch.zeros(10), "layers.0.blocks.1.attn_mask": torch.zeros(1)})
    path = tmp_path / "swin_nano_patch4_window7_224.pth"
    torch.save({"model": swin}, path)
    target = build_model("nano", with_cnn=True)
    norm0_before = target.backbone.norm0.weight.detach().clone()
    loaded = load_swin_imagenet(target, path)
    assert loaded and all(k.startswith(("patch_embed.", "layers.")) for k in loaded)
    for key in loaded:
        assert torch.equal(target.backbone.state_dict()[key], swin[key]), key
    assert torch.equal(target.backbone.norm0.weight, norm0_before)  # not in ImageNet checkpoints
    with pytest.raises(CheckpointError, match="does not fit the 'tiny07' Swin backbone"):
        with torch.device("meta"):
            tiny = build_model("tiny07", with_cnn=False)
        load_swin_imagenet(tiny, path)


def test_torchvision_densenet_imagenet_weights_initialise_the_cnn_branch(tmp_path):
    torch.manual_seed(0)
    source = build_model("nano", with_cnn=True).backbone.base_model.state_dict()
    # torchvision's published files use old-style names inside dense layers ("norm.1" for "norm1")
    old_style = {"features." + k.replace("norm1", "norm.1").replace("conv2", "conv.2") if "denselayer" in k
                 else "features." + k: v.clone() for k, v in source.items()}
    old_style.update({"classifier.weight": torch.zeros(1000, 31), "classifier.bias": torch.zeros(1000)})
    path = tmp_path / "densenet_nano.pth"
    torch.save(old_style, path)
    target = build_model("nano", with_cnn=True)
    loaded = checkpoints.load_densenet_imagenet(target, path)
    assert len(loaded) == len(source)
    for key, value in source.items():
        assert torch.equal(target.backbone.base_model.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match="no CNN branch"):
        checkpoints.load_densenet_imagenet(build_model("nano", with_cnn=False), path)


@pytest.mark.parametrize("option, value, default", [("up_mode", "mask", "bilinear"), ("ape_grid", (24, 80), ())])
def test_infer_config_detects_official_model_options(option, value, default):
    """up_mode='mask' (mask_head.*) and ape_grid (backbone.absolute_pos_embed) are read from the keys
    and keep the variant's name."""
    import dataclasses

    from urcdc_model.models import ModelConfig, URCDCDepth

    cfg = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False, **{option: value})
    inferred = infer_config(URCDCDepth(cfg).state_dict())
    assert getattr(inferred, option) == value and inferred.name == "nano"
    plain = infer_config(URCDCDepth(dataclasses.replace(cfg, **{option: default})).state_dict())
    assert getattr(plain, option) == default
