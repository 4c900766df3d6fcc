"""DSSSQALoss and NoReferenceQualityLoss: values by hand, gradients flow into the images only,
gradcheck, and optimisation works."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semantic_iqa import create_metric
from semantic_iqa.errors import InvalidInputError, InvalidOptionError
from semantic_iqa.integrations.loss import DSSSQALoss, NoReferenceQualityLoss
from semantic_iqa.metrics.dss_sqa.tiny import build_random_model
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa


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


def checkpointing_effects(model, checkpointing: bool, ref: torch.Tensor, dist: torch.Tensor) -> dict:
    """Backbone forward calls during the loss's forward and its backward, and bytes saved for backward."""
    calls = {"structure": 0, "semantic": 0}
    # Pre-hooks: the recomputation stops as soon as the last saved tensor is recomputed,
    # inside the semantic backbone's forward, so a post-forward hook would miss that call.
    handles = [
        getattr(model, name).register_forward_pre_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
        for name in calls
    ]
    saved = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    try:
        loss_fn = DSSSQALoss(model=model, activation_checkpointing=checkpointing)
        x = dist.clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = loss_fn(x, ref)
        in_forward = dict(calls)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    in_backward = {name: calls[name] - in_forward[name] for name in calls}
    return {"forward": in_forward, "backward": in_backward, "saved_bytes": sum(saved), "grad": x.grad}


def test_activation_checkpointing_recomputes_the_backbones_and_saves_less(loss_fn, pair):
    """Checkpointing proven by what it changes, not only by equal gradients: in the backward
    pass both backbones run once more on the distorted images (they ran once for the
    references and once for the distorted images in the forward pass), and the tensors kept
    for backward shrink to the checkpoint's inputs and what lies outside it."""
    ref, dist = pair
    plain = checkpointing_effects(loss_fn.model, False, ref, dist)
    checkpointed = checkpointing_effects(loss_fn.model, True, ref, dist)
    both = {"structure": 2, "semantic": 2}
    assert plain["forward"] == both and plain["backward"] == {"structure": 0, "semantic": 0}
    assert checkpointed["forward"] == both and checkpointed["backward"] == {"structure": 1, "semantic": 1}
    # Measured (tiny model, 2 pairs at 224 x 224): 9.4 MB saved without, 3.9 MB with (the
    # checkpoint's input and the resizing before it); any tensor saved inside the backbones counts.
    assert checkpointed["saved_bytes"] < 0.6 * plain["saved_bytes"], (checkpointed["saved_bytes"], plain["saved_bytes"])
    torch.testing.assert_close(checkpointed["grad"], plain["grad"])


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


# -- NoReferenceQualityLoss (MST-CLIPIQA) ------------------------------------------------------
PROMPTS = ["a red car on a street", "a cat asleep on a sofa", "mountains at dawn"]


@pytest.fixture(scope="module")
def mst_a_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random MST-CLIPIQA variant A (quality in [1, 5]) weights folder."""
    return build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "a")


@pytest.fixture(scope="module")
def mst_b_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random MST-CLIPIQA variant B (image + prompt, unbounded) weights folder."""
    return build_random_mst_clipiqa("B", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "b")


@pytest.fixture(scope="module")
def nr_images() -> torch.Tensor:
    """Three 40x56 images of different content: noise, dark noise, a horizontal gradient."""
    generator = torch.Generator().manual_seed(4)
    images = torch.rand(3, 3, 40, 56, generator=generator)
    images[1] = images[1] * 0.2
    images[2] = torch.linspace(0, 1, 56).expand(3, 40, 56)
    return images


def test_no_reference_loss_is_five_minus_the_score(mst_a_dir, nr_images):
    loss_fn = NoReferenceQualityLoss("mst_clipiqa", mst_a_dir, reduction="none")
    with torch.no_grad():
        scores = create_metric("mst_clipiqa", mst_a_dir, device="cpu")(nr_images).score
        expected = 5.0 - scores  # best score 5 -> loss 0
        torch.testing.assert_close(loss_fn(nr_images), expected, rtol=0, atol=1e-5)
        mean_loss = NoReferenceQualityLoss("mst_clipiqa", model=loss_fn.model)(nr_images)
        torch.testing.assert_close(mean_loss, expected.mean(), rtol=0, atol=1e-5)
        sum_loss = NoReferenceQualityLoss("mst_clipiqa", model=loss_fn.model, reduction="sum")(nr_images)
        torch.testing.assert_close(sum_loss, expected.sum(), rtol=0, atol=1e-5)
    # Not trivially zero (a perfect score), and different per image: measured 1.69, 2.30, 3.03.
    assert (expected > 0.5).all() and float(expected.max() - expected.min()) > 0.2, expected


def test_prompt_variant_loss_is_minus_the_score(mst_b_dir, nr_images):
    loss_fn = NoReferenceQualityLoss("mst_clipiqa_prompt", mst_b_dir, reduction="none")
    with torch.no_grad():
        scores = create_metric("mst_clipiqa_prompt", mst_b_dir, device="cpu")(nr_images, PROMPTS).score
        torch.testing.assert_close(loss_fn(nr_images, PROMPTS), -scores, rtol=0, atol=1e-5)
    assert (scores.abs() > 0.1).all(), scores  # not trivially zero: measured -1.2, -6.5, -4.2
    with pytest.raises(InvalidInputError, match="needs the generation prompt"):
        loss_fn(nr_images)


def test_no_reference_loss_gradients_reach_the_images_only(mst_a_dir, nr_images):
    loss_fn = NoReferenceQualityLoss("mst_clipiqa", mst_a_dir)
    images = nr_images.clone().requires_grad_(True)
    loss_fn(images).backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss_fn.model.parameters())


def test_no_reference_loss_model_stays_in_eval_mode_and_out_of_the_state_dict(mst_a_dir):
    loss_fn = NoReferenceQualityLoss("mst_clipiqa", mst_a_dir)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    network.loss = loss_fn
    network.train()
    assert not loss_fn.model.training and not loss_fn.model.fusion.training
    assert set(network.state_dict()) == {"0.weight", "0.bias"}


def test_adam_steps_on_an_image_lower_the_no_reference_loss(mst_a_dir):
    loss_fn = NoReferenceQualityLoss("mst_clipiqa", mst_a_dir)
    generator = torch.Generator().manual_seed(5)
    start = (0.3 + 0.4 * torch.rand(1, 3, 32, 32, generator=generator)).clamp(0.01, 0.99)
    logits = torch.logit(start).requires_grad_(True)  # optimise in logit space so the image stays in [0, 1]
    optimiser = torch.optim.Adam([logits], lr=0.05)
    values = []
    for _ in range(8):
        optimiser.zero_grad()
        loss = loss_fn(torch.sigmoid(logits))
        loss.backward()
        optimiser.step()
        values.append(loss.item())
    assert values[-1] < values[0] - 0.05, values  # measured 0.94 -> 0.10


def test_no_reference_loss_refuses_what_does_not_fit(mst_a_dir, tiny_dir, nr_images):
    loss_fn = NoReferenceQualityLoss("mst_clipiqa", mst_a_dir)
    with pytest.raises(InvalidInputError, match="takes no prompts"):
        loss_fn(nr_images, PROMPTS)
    with pytest.raises(InvalidOptionError, match="unknown reduction"):
        NoReferenceQualityLoss("mst_clipiqa", model=loss_fn.model, reduction="median")
    with pytest.raises(InvalidOptionError, match="full-reference"):
        NoReferenceQualityLoss("dss_sqa", tiny_dir)
    with pytest.raises(InvalidOptionError, match="variant='A'"):
        NoReferenceQualityLoss("mst_clipiqa_prompt", model=loss_fn.model)
