"""The losses as training code calls them: under bf16 autocast, with a generator's slightly
out-of-range output (`clamp=True`), and inside `torch.compile(fullgraph=True)`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semantic_iqa.errors import InvalidInputError
from semantic_iqa.integrations.loss import DSSSQALoss, NoReferenceQualityLoss, clamp_unit_range
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa


@pytest.fixture(scope="module")
def mst_a_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "a")


@pytest.fixture(scope="module")
def losses(tiny_dir, mst_a_dir):
    return {
        "fr": DSSSQALoss(tiny_dir, reduction="none"),
        "nr": NoReferenceQualityLoss("mst_clipiqa", mst_a_dir, reduction="none"),
    }


@pytest.fixture(scope="module")
def pair():
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 32, 40, generator=generator)
    return ref, (0.6 * ref + 0.2).clamp(0, 1)


def call(loss_fn, dist, ref):
    full_reference = isinstance(getattr(loss_fn, "_orig_mod", loss_fn), DSSSQALoss)  # a compiled one wraps it
    return loss_fn(dist, ref) if full_reference else loss_fn(dist)


@pytest.mark.parametrize("kind", ["fr", "nr"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_bf16_autocast_gives_a_float32_loss(losses, pair, kind, reduction):
    ref, dist = pair
    loss_fn = losses[kind]
    loss_fn.reduction = reduction
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = call(loss_fn, dist, ref)
    finally:
        loss_fn.reduction = "none"
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss).all()


@pytest.mark.parametrize("kind", ["fr", "nr"])
def test_clamp_scores_the_displayed_image_and_keeps_gradients(tiny_dir, mst_a_dir, pair, kind):
    ref, dist = pair
    overshoot = dist.clone()
    overshoot[:, :, :8, :8] = 1.08  # a generator's output above white in one corner
    overshoot[:, :, -8:, -8:] = -0.05
    strict, clamped = (
        DSSSQALoss(tiny_dir, reduction="none", clamp=clamp)
        if kind == "fr"
        else NoReferenceQualityLoss("mst_clipiqa", mst_a_dir, reduction="none", clamp=clamp)
        for clamp in (False, True)
    )
    with pytest.raises(InvalidInputError, match="must hold values in"):
        call(strict, overshoot, ref)
    image = overshoot.clone().requires_grad_(True)
    loss = call(clamped, image, ref)
    torch.testing.assert_close(loss, call(strict, overshoot.clamp(0, 1), ref), rtol=0, atol=0)
    loss.sum().backward()
    assert image.grad[:, :, :8, :8].abs().sum() > 0, "pixels outside the range still get the metric's gradient"
    assert torch.equal(call(clamped, dist, ref), call(strict, dist, ref)), "in-range images are unchanged"


def test_clamp_unit_range_is_straight_through():
    x = torch.tensor([-0.5, 0.25, 1.5], requires_grad=True)
    y = clamp_unit_range(x)
    assert y.tolist() == [0.0, 0.25, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("kind", ["fr", "nr"])
def test_the_loss_compiles_as_one_graph(losses, pair, kind):
    """fullgraph=True fails on any graph break (the input value checks caused 7)."""
    torch._dynamo.reset()
    ref, dist = pair
    loss_fn = losses[kind]
    eager = call(loss_fn, dist, ref)
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")  # AOTAutograd: forward and backward traced
    image = dist.clone().requires_grad_(True)
    value = call(compiled, image, ref)
    torch.testing.assert_close(value, eager, rtol=0, atol=1e-5)
    value.sum().backward()
    eager_image = dist.clone().requires_grad_(True)
    call(loss_fn, eager_image, ref).sum().backward()
    # AOTAutograd's decompositions (the antialiased resize) round differently: compare to the
    # gradient's own scale. A wrong or missing gradient path differs by the whole scale.
    scale = eager_image.grad.abs().max()
    assert scale > 0
    assert (image.grad - eager_image.grad).abs().max() <= 1e-3 * scale
