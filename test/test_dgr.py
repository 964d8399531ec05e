"""Depth Gradient Refinement: shapes, identity at init, fixed kernels, trainability."""
import pytest
import torch

from urcdc_model.models.dgr import DepthGradientRefinement


@pytest.mark.parametrize("channels, height, width", [(1, 5, 7), (16, 8, 24), (64, 11, 13), (96, 4, 4)])
def test_shape_preserved_and_identity_at_init(channels, height, width):
    dgr = DepthGradientRefinement(channels)
    x = torch.randn(2, channels, height, width)
    y = dgr(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # zero-initialised last layer: enabling DGR does not disturb a checkpoint


def test_fixed_kernels_are_not_parameters_or_state():
    dgr = DepthGradientRefinement(8)
    assert not any("kernel" in name for name, _ in dgr.named_parameters())
    assert not any("kernel" in key for key in dgr.state_dict())


def test_high_pass_responses_vanish_on_constant_input_and_see_edges():
    dgr = DepthGradientRefinement(3)
    flat = torch.full((1, 3, 6, 6), 7.0)
    assert torch.allclose(dgr.laplacian(flat), torch.zeros_like(flat))
    assert torch.allclose(dgr.third_order(flat), torch.zeros_like(flat))
    step = torch.zeros(1, 3, 6, 6)
    step[..., 3:] = 1.0
    assert dgr.laplacian(step)[..., 2:4].abs().sum() > 0
    # the image border is not an edge (replicate padding)
    assert torch.allclose(dgr.laplacian(step)[..., 0], torch.zeros(1, 3, 6))


def test_dgr_learns_once_trained():
    torch.manual_seed(0)
    dgr = DepthGradientRefinement(4)
    x = torch.randn(2, 4, 8, 8)
    target = x + torch.randn_like(x)
    optimiser = torch.optim.Adam(dgr.parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        loss = torch.nn.functional.mse_loss(dgr(x), target)
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < first
    assert not torch.equal(dgr(x), x)


def test_rejects_bad_channel_count():
    with pytest.raises(ValueError, match="channels"):
        DepthGradientRefinement(0)
