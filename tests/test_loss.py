"""DSSSQALoss: gradients flow into the distorted image only, gradcheck, and optimisation works."""

from __future__ import annotations

import pytest
import torch

from semantic_iqa.errors import InvalidOptionError
from semantic_iqa.integrations.loss import DSSSQALoss
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model


@pytest.fixture
def loss_fn(tiny_dir) -> DSSSQALoss:
    return DSSSQALoss(tiny_dir)


@pytest.fixture(scope="module")
def pair():
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 24, 32, generator=generator)
    return ref, (0.5 * ref + 0.25).clamp(0, 1)


def test_value_is_five_minus_the_ungated_score_plus_the_cosine_penalty(loss_fn, pair):
    ref, dist = pair
    # A third pair whose distorted image is unrelated noise: its CLIP cosine is below the
    # gate's upper threshold (measured 0.32, penalty 1.8), so the penalty is exercised and
    # not just zero as for the two related pairs (cosines 0.63 and 0.72).
    unrelated = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    ref, dist = torch.cat([ref, ref[:1]]), torch.cat([dist, unrelated])
    model = loss_fn.model
    with torch.no_grad():
        out = model(ref, dist, gate="off")
        penalty = ((0.5 - out.cos_sim) / 0.1).clamp(min=0)
        assert (penalty[:2] == 0).all() and penalty[2] > 0.5
        expected = 5 - out.score + 5.0 * penalty
        torch.testing.assert_close(DSSSQALoss(model=model, reduction="none")(dist, ref), expected)
        torch.testing.assert_close(loss_fn(dist, ref), expected.mean())
        torch.testing.assert_close(DSSSQALoss(model=model, reduction="sum")(dist, ref), expected.sum())
        no_penalty = DSSSQALoss(model=model, reduction="none", gate_penalty=0.0)(dist, ref)
        torch.testing.assert_close(no_penalty, 5 - out.score)
    # Measured: the penalty adds 9.0 to the third pair's loss, and 5 - score is 2.15-2.75,
    # both far above the comparisons' 1e-5 tolerance and far from zero.
    assert (expected - no_penalty)[2] > 2.5
    assert (no_penalty > 1).all()


def test_gradients_reach_the_distorted_image_only(loss_fn, pair):
    ref, dist = pair
    ref, dist = ref.clone().requires_grad_(True), dist.clone().requires_grad_(True)
    loss_fn(dist, ref).backward()
    assert dist.grad is not None and torch.isfinite(dist.grad).all() and dist.grad.abs().sum() > 0
    assert ref.grad is None, "references are constants"
    assert all(p.grad is None and not p.requires_grad for p in loss_fn.model.parameters())


def test_activation_checkpointing_gives_the_same_gradients(tiny_dir, pair):
    ref, dist = pair
    grads = []
    for checkpointing in (False, True):
        x = dist.clone().requires_grad_(True)
        DSSSQALoss(tiny_dir, activation_checkpointing=checkpointing)(x, ref).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_model_stays_in_eval_mode_and_out_of_the_enclosing_state_dict(loss_fn):
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    network.loss = loss_fn
    network.train()
    assert not loss_fn.model.training and not loss_fn.model.heads.training
    assert set(network.state_dict()) == {"0.weight", "0.bias"}


def test_gradcheck_in_float64():

    tiny = build_random_model("tiny", seed=1).double()
    loss = DSSSQALoss(model=tiny, reduction="sum")
    generator = torch.Generator().manual_seed(2)
    ref = torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64)
    # Mid-range values: bicubic overshoot never reaches the [0, 1] clamp, so the map is smooth.
    dist = (0.3 + 0.4 * torch.rand(1, 3, 6, 6, generator=generator, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: loss(d, ref), (dist,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_twenty_steps_of_optimisation_lower_the_loss(tiny_dir):
    loss_fn = DSSSQALoss(tiny_dir)
    generator = torch.Generator().manual_seed(3)
    ref = torch.rand(1, 3, 16, 16, generator=generator)
    logits = torch.logit((0.5 * ref + 0.25 * torch.rand(1, 3, 16, 16, generator=generator)).clamp(0.01, 0.99))
    logits.requires_grad_(True)  # optimise in logit space so the image stays in [0, 1]
    optimiser = torch.optim.Adam([logits], lr=0.05)
    values = []
    for _ in range(20):
        optimiser.zero_grad()
        loss = loss_fn(torch.sigmoid(logits), ref)
        loss.backward()
        optimiser.step()
        values.append(loss.item())
    assert values[-1] < values[0]


def test_reference_cache_in_the_loss_gives_identical_values(tiny_dir, pair):
    ref, dist = pair
    cached = DSSSQALoss(tiny_dir, cache_references=True)
    plain = DSSSQALoss(tiny_dir)
    for _ in range(2):
        torch.testing.assert_close(cached(dist, ref), plain(dist, ref), rtol=0, atol=0)
    assert cached.reference_cache.hits == 2 and cached.reference_cache.misses == 2


def test_bad_reduction(tiny_dir):
    with pytest.raises(InvalidOptionError, match="unknown reduction"):
        DSSSQALoss(tiny_dir, reduction="median")
