"""The URCDC-Depth network: shapes at odd sizes, official key layout, official numerics, training step."""
from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from urcdc_model.inference import predict_depth
from urcdc_model.models import VARIANTS, ModelConfig, URCDCDepth, build_model
from urcdc_model.models.layers import adaptive_avg_pool2d, padded_key_mask, shifted_window_mask, window_partition

DATA = Path(__file__).resolve().parent / "data"
OFFICIAL_VARIANTS = ("tiny07", "base07", "large07")

# A micro configuration with the official module structure, used for the golden-output test.
MICRO = ModelConfig(name="micro", embed_dim=8, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.0,
                    psp_channels=16, psp_gn_groups=8, crf_dims=(8, 16, 16, 16), crf_num_heads=(1, 2, 2, 2),
                    cnn_growth_rate=4, cnn_block_config=(1, 1, 1, 1), cnn_init_features=8, max_depth=10.0)


def deterministic_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights in sorted-key order (also used to produce test/data/official_micro_golden.npz)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in sorted(model.state_dict().items()):
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        else:
            state[key] = 0.3 * torch.randn(value.shape, generator=gen)
    return state


def micro_input() -> torch.Tensor:
    return torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def official_keys() -> dict[str, dict[str, list[int]]]:
    with gzip.open(DATA / "official_state_dict_keys.json.gz", "rt") as f:
        return json.load(f)["variants"]


@pytest.fixture(scope="module")
def meta_models() -> dict[str, URCDCDepth]:
    """The big official variants built on the meta device: real module tree, no memory or init cost."""
    with torch.device("meta"):
        return {name: build_model(name, with_cnn=True).eval() for name in OFFICIAL_VARIANTS}


@pytest.mark.parametrize("name", OFFICIAL_VARIANTS)
def test_official_variant_keys_and_shapes_match_official_code(name, meta_models, official_keys):
    ours = {k: list(v.shape) for k, v in meta_models[name].state_dict().items()}
    expected = official_keys[name]
    assert sorted(set(expected) - set(ours)) == [], "keys of the official model missing here"
    assert sorted(set(ours) - set(expected)) == [], "keys the official model does not have"
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


def test_nano_uses_the_official_key_layout(official_keys):
    # nano is smaller (fewer blocks, narrower), so its key *names* are a subset of large07's.
    ours = set(build_model("nano", with_cnn=True).state_dict())
    assert ours - set(official_keys["large07"]) == set()


@pytest.mark.parametrize("name", OFFICIAL_VARIANTS)
def test_official_variants_forward_shapes_at_odd_size(name, meta_models):
    with torch.device("meta"):
        out = meta_models[name](torch.empty(2, 3, 45, 61))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: (2, 1, 45, 61) for k in ("depth", "confidence", "depth_cnn", "confidence_cnn")}


@pytest.mark.parametrize("hw", [(37, 53), (97, 131)])
def test_nano_forward_shapes_and_ranges(hw):
    torch.manual_seed(0)
    model = build_model("nano", max_depth=10.0).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    for key in ("depth", "confidence", "depth_cnn", "confidence_cnn"):
        assert out[key].shape == (1, 1, *hw)
        assert torch.isfinite(out[key]).all()
    assert 0 < out["depth"].min() and out["depth"].max() < 10.0
    assert 0 < out["confidence"].min() and out["confidence"].max() < 1.0


def test_micro_matches_official_forward_golden():
    """Outputs recorded from a transcription of the official code (same weights, same input)."""
    golden = np.load(DATA / "official_micro_golden.npz")
    model = URCDCDepth(MICRO).eval()
    model.load_state_dict(deterministic_state(model), strict=True)
    image = micro_input()
    with torch.no_grad():
        out = model(image)
    depth_tta, _ = predict_depth(model, image, flip_tta=True)
    ours = {"depth": out["depth"], "confidence": out["confidence"], "depth_cnn": out["depth_cnn"],
            "confidence_cnn": out["confidence_cnn"], "depth_tta": depth_tta}
    for key, value in ours.items():
        np.testing.assert_allclose(value[0, 0, ::4, ::4].numpy(), golden[key], atol=1e-4, err_msg=key)


def test_deploy_model_equals_two_branch_transformer_output():
    torch.manual_seed(0)
    full = build_model("nano", with_cnn=True).eval()
    deploy = URCDCDepth(dataclasses.replace(full.cfg, with_cnn=False)).eval()
    state = {k: v for k, v in full.state_dict().items() if k in deploy.state_dict()}
    deploy.load_state_dict(state, strict=True)
    image = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        a, b = full(image), deploy(image)
    assert set(b) == {"depth", "confidence"}
    assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["confidence"], b["confidence"])


def test_nano_trains_a_step_and_cnn_loss_does_not_reach_swin():
    torch.manual_seed(0)
    model = build_model("nano", with_cnn=True).train()
    for k in range(1, 5):
        getattr(model.backbone, f"fusion{k}").skip_prob = 0.0  # the random skip is tested separately
    image = torch.randn(2, 3, 64, 96)
    out = model(image, image.flip(-1))
    out["depth_cnn"].mean().backward()
    # coupling units see the Swin features detached: CNN loss leaves the Transformer branch untouched
    assert model.backbone.patch_embed.proj.weight.grad is None
    assert model.backbone.fusion1.conv1.weight.grad is not None
    model.zero_grad()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.crf0.norm_crf.weight.detach().clone()
    out = model(image, image)
    loss = sum(v.mean() for v in out.values())
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.crf0.norm_crf.weight)


def test_coupling_unit_skip_probability_in_training_only():
    model = build_model("nano", with_cnn=True)
    unit = model.backbone.fusion1
    x, x_t = torch.randn(1, unit.conv1.in_channels, 8, 8), torch.randn(1, unit.bn.num_features, 8, 8)
    unit.train()
    torch.manual_seed(0)
    skipped = sum(torch.equal(unit(x, x_t), x) for _ in range(200))
    assert 2 <= skipped <= 25  # expected 0.05 * 200 = 10
    unit.eval()
    assert not torch.equal(unit(x, x_t), x)


def test_dgr_modules_registered_outside_official_keys():
    pytest.importorskip("urcdc_model.models.dgr")
    model = build_model("nano", with_cnn=False, dgr_positions=("swin3", "crf0"))
    extra = {k for k in model.state_dict() if k.startswith("dgr.")}
    assert extra and {k.split(".")[1] for k in extra} == {"swin3", "crf0"}
    plain = build_model("nano", with_cnn=False)
    assert set(model.state_dict()) - extra == set(plain.state_dict())


def _official_shift_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """The official slice-assignment construction, for comparison."""
    hp, wp = -(-height // window) * window, -(-width // window) * window
    img_mask = torch.zeros((1, hp, wp, 1))
    slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    cnt = 0
    for h in slices:
        for w in slices:
            img_mask[:, h, w, :] = cnt
            cnt += 1
    windows = window_partition(img_mask, window).reshape(-1, window * window)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


@pytest.mark.parametrize("hw", [(7, 7), (11, 38), (22, 76), (44, 144), (3, 5)])
def test_shifted_window_mask_equals_official_construction(hw):
    h, w = hw
    hp, wp = -(-h // 7) * 7, -(-w // 7) * 7
    assert torch.equal(shifted_window_mask(hp, wp, 7, 3, torch.device("cpu")), _official_shift_mask(h, w, 7, 3))


@pytest.mark.parametrize("scale", [1, 2, 3, 6])
def test_exportable_adaptive_pool_equals_torch(scale):
    x = torch.randn(2, 5, 11, 38)
    torch.testing.assert_close(adaptive_avg_pool2d(x, scale), F.adaptive_avg_pool2d(x, scale))


def test_config_round_trip_and_clear_errors():
    for cfg in VARIANTS.values():
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown model variant 'huge07'"):
        ModelConfig.from_name("huge07")
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({"name": "x", "embed_dims": 3})
    with pytest.raises(ValueError, match="dgr_positions"):
        dataclasses.replace(VARIANTS["nano"], dgr_positions=("swin9",))


def test_nano_size_budget():
    model = build_model("nano", with_cnn=True)
    assert sum(p.numel() for p in model.parameters()) <= 2_500_000


def _unfold_convex_upsample(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The official ``upsample_mask`` (F.unfold), for comparison."""
    n, _, h, w = x.shape
    weights = torch.softmax(mask.view(n, 1, 9, 4, 4, h, w), dim=2)
    neighbours = F.unfold(x, kernel_size=3, padding=1).view(n, 1, 9, 1, 1, h, w)
    return torch.sum(weights * neighbours, dim=2).permute(0, 1, 4, 2, 5, 3).reshape(n, 1, 4 * h, 4 * w)


def test_convex_upsampling_equals_the_official_unfold_version():
    from urcdc_model.models.urcdc import convex_upsample

    torch.manual_seed(0)
    x, mask = torch.rand(2, 1, 5, 7), torch.randn(2, 144, 5, 7)
    torch.testing.assert_close(convex_upsample(x, mask), _unfold_convex_upsample(x, mask), rtol=0, atol=1e-7)
    # a mask that puts all weight on the centre tap repeats each coarse pixel 4x4 (nearest upsampling)
    centre = torch.full((1, 9, 4, 4, 5, 7), -1e4)
    centre[:, 4] = 0.0
    torch.testing.assert_close(convex_upsample(x[:1], centre.view(1, 144, 5, 7)),
                               x[:1].repeat_interleave(4, 2).repeat_interleave(4, 3))


@pytest.mark.parametrize("hw", [(96, 320), (50, 70)])
def test_mask_upsampling_model_keeps_official_keys_and_output_size(hw):
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), up_mode="mask")
    model = URCDCDepth(cfg).eval()
    plain = URCDCDepth(ModelConfig.from_name("nano"))
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra == {"mask_head.0.weight", "mask_head.0.bias", "mask_head.2.weight", "mask_head.2.bias"}
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out["depth"].shape == out["confidence"].shape == (1, 1, *hw)
    assert (out["depth"] > 0).all() and (out["depth"] < cfg.max_depth).all()
    with pytest.raises(ValueError, match="up_mode"):
        dataclasses.replace(cfg, up_mode="nearest")


def test_absolute_position_embedding_is_one_extra_key_and_resizes_to_any_input():
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), ape_grid=(24, 80))
    model = URCDCDepth(cfg).eval()
    extra = set(model.state_dict()) - set(URCDCDepth(ModelConfig.from_name("nano")).state_dict())
    assert extra == {"backbone.absolute_pos_embed"}
    assert model.state_dict()["backbone.absolute_pos_embed"].shape == (1, cfg.embed_dim, 24, 80)
    with torch.no_grad():
        for hw in ((96, 320), (50, 70)):
            assert model(torch.randn(1, 3, *hw))["depth"].shape == (1, 1, *hw)
        # the embedding reaches the output: zeroing it changes the prediction
        image = torch.randn(1, 3, 96, 320)
        before = model(image)["depth"]
        model.backbone.absolute_pos_embed.zero_()
        assert not torch.allclose(before, model(image)["depth"])
    with pytest.raises(ValueError, match="ape_grid"):
        dataclasses.replace(cfg, ape_grid=(24,))


def test_ray_embedding_starts_as_a_no_op_on_trained_weights_and_then_reaches_the_output():
    from urcdc_model.models.swin import patch_rays

    torch.manual_seed(0)
    plain = URCDCDepth(ModelConfig.from_name("nano")).eval()
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), ray_focal_px=185.9)
    model = URCDCDepth(cfg).eval()
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra == {"backbone.ray_embed.weight", "backbone.ray_embed.bias"}
    model.load_state_dict({**plain.state_dict(), **{k: model.state_dict()[k] for k in extra}})
    image = torch.randn(1, 3, 104, 328)
    with torch.no_grad():
        assert torch.equal(plain(image)["depth"], model(image)["depth"])       # zero-initialised
        torch.nn.init.normal_(model.backbone.ray_embed.weight)
        assert not torch.allclose(plain(image)["depth"], model(image)["depth"])
        assert model(torch.randn(1, 3, 50, 70))["depth"].shape == (1, 1, 50, 70)
    # ray directions of the patch centres about the image centre, at the given focal
    rays = patch_rays((8, 12), (2, 3), 4, 2.0, image)
    np.testing.assert_allclose(rays[0, 0, 0].numpy(), [-2.0, 0.0, 2.0])     # (u - 5.5) / 2, u = 1.5, 5.5, 9.5
    np.testing.assert_allclose(rays[0, 1, :, 0].numpy(), [-1.0, 1.0])       # (v - 3.5) / 2, v = 1.5, 5.5
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ray_focal_px"):
            dataclasses.replace(cfg, ray_focal_px=bad)


@pytest.mark.parametrize("shift", [0, 3])
def test_padded_key_mask_hides_exactly_the_padded_tokens(shift):
    height, width = 9, 16                                              # padded to 14 x 21
    rows, cols = torch.meshgrid(torch.arange(14), torch.arange(21), indexing="ij")
    grid = torch.stack([rows, cols], dim=-1).float()
    grid = torch.roll(grid, shifts=(-shift, -shift), dims=(0, 1))      # where each token sits after the shift
    where = window_partition(grid[None], 7).reshape(-1, 49, 2)
    padded = (where[..., 0] >= height) | (where[..., 1] >= width)
    mask = padded_key_mask(height, width, 7, shift, torch.device("cpu"))
    assert mask.shape == (6, 1, 49)
    assert torch.equal(mask[:, 0] < 0, padded) and bool(padded.any())


@pytest.mark.parametrize("mask_padding", [False, True])
def test_masked_window_padding_makes_the_output_independent_of_what_the_padding_holds(monkeypatch, mask_padding):
    """With the mask the windows' padding is invisible (official: the zeros are attended, so the padding
    fraction, which changes with the input size, reaches the depth)."""
    from urcdc_model.models import layers, newcrf, swin

    torch.manual_seed(0)
    cfg = dataclasses.replace(MICRO, with_cnn=False, mask_window_padding=mask_padding)
    model = URCDCDepth(cfg).eval()
    image = torch.randn(1, 3, 40, 76)                                  # no stage is a multiple of 7

    def padded_with(value):
        def pad(x, multiple):
            h, w = x.shape[1], x.shape[2]
            return F.pad(x, (0, 0, 0, layers.pad_amount(w, multiple), 0, layers.pad_amount(h, multiple)),
                         value=value)
        return pad

    outputs = []
    for value in (0.0, 3.0):
        monkeypatch.setattr(swin, "pad_hw_last", padded_with(value))
        monkeypatch.setattr(newcrf, "pad_hw_last", padded_with(value))
        with torch.no_grad():
            outputs.append(model(image)["depth"])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5) == mask_padding
