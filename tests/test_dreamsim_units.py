"""DreamSim's model and preprocessing, each check on a model built inside its test (mutation testing).

tests/test_dreamsim.py checks the recipe on the shared tiny ensemble (a session fixture, which
mutmut links to its first test only); these build a small one-branch model per test, at 112 px
so that a forgotten `image_size` (the default 224) shows. Random weights: plumbing, not accuracy.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dreamsim_testing import as_tensor, reference_image

from semantic_iqa.backbones import TimmOutputEncoder
from semantic_iqa.config import BackboneSpec
from semantic_iqa.errors import InvalidInputError, InvalidOptionError, WeightsFormatError
from semantic_iqa.metrics.dreamsim import DreamSim, DreamSimConfig
from semantic_iqa.metrics.dreamsim.branches import BRANCHES, branch, model_type_branches
from semantic_iqa.metrics.dreamsim.model import embedding_distance, normalize_embedding
from semantic_iqa.metrics.dreamsim.preprocess import load_squashed, squash_tensor
from semantic_iqa.metrics.dreamsim.tiny import TINY_SIZES

SIZE = 112


def small_model(seed: int = 0) -> DreamSim:
    """One DINO-like branch of width 32 at 112 x 112, its block weights scaled so that images differ."""
    item = BRANCHES["dino_vitb16"]
    torch.manual_seed(seed)
    encoder = TimmOutputEncoder.build(item.architecture, **item.model_args, **TINY_SIZES, img_size=SIZE)
    with torch.no_grad():
        for block in encoder.model.blocks:
            block.attn.qkv.weight.mul_(5)
            block.mlp.fc1.weight.mul_(5)
    config = DreamSimConfig.for_branches("dino_vitb16", (item,), dino=BackboneSpec("timm", "small", path="dino"))
    return DreamSim(dataclasses.replace(config, image_size=SIZE), {"dino": encoder}).eval()


def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Three references (72 x 96) and their distortions, all different."""
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 3, 72, 96, generator=generator)
    return ref, (ref + 0.3 * torch.rand(3, 3, 72, 96, generator=generator)).clamp(0, 1)


def test_a_model_of_another_size_resizes_to_its_own_size():
    model = small_model()
    ref, dist = pairs()
    with torch.no_grad():
        distance = model(ref, dist)
        expected = embedding_distance(model.encode(squash_tensor(ref, SIZE)), model.encode(squash_tensor(dist, SIZE)))
    assert torch.equal(distance, expected) and float(distance.min()) > 1e-3
    assert model.working_size(300, 200) == (SIZE, SIZE)
    assert model.image_transform()(reference_image()).shape == (3, SIZE, SIZE)
    assert load_squashed(ref[0], SIZE).shape == (3, SIZE, SIZE)
    assert torch.equal(model.embed_batch(squash_tensor(ref, SIZE)), model.encode(squash_tensor(ref, SIZE)))


def test_grey_images_are_repeated_to_rgb_as_pil_converts_them():
    grey = reference_image().convert("L")
    pixels = torch.from_numpy(np.asarray(grey).copy()).float().div(255)[None]  # [1, H, W]
    batch = torch.stack([pixels, pixels.flip(-1)])  # [2, 1, H, W]
    squashed = squash_tensor(batch, SIZE)
    assert squashed.shape == (2, 3, SIZE, SIZE)
    torch.testing.assert_close(squashed, squash_tensor(batch.expand(2, 3, -1, -1), SIZE), rtol=0, atol=0)
    via_pil = load_squashed(grey, SIZE)
    assert via_pil.shape == (3, SIZE, SIZE)
    assert 0 < (load_squashed(pixels, SIZE) - via_pil).abs().max() <= 1.5 / 255
    rgb = as_tensor(reference_image())
    assert torch.equal(squash_tensor(rgb[None], SIZE)[0], load_squashed(rgb, SIZE))


@pytest.mark.parametrize("shape", [(2, 72, 96), (4, 72, 96), (1, 3, 72, 96)])
def test_a_float_image_of_another_shape_is_refused_by_load_squashed(shape):
    message = f"expected one [C, H, W] image with C = 1 or 3, got shape {shape}"
    with pytest.raises(InvalidInputError, match="^" + re.escape(message) + "$"):
        load_squashed(torch.zeros(shape))


def test_the_call_names_the_argument_that_is_not_a_float_tensor():
    model = small_model()
    ref, dist = pairs()
    for bad in ("ref", "dist"):
        images = {"ref": ref, "dist": dist, bad: (ref * 255).to(torch.uint8)}
        with pytest.raises(InvalidInputError, match=f"^{bad}: this call takes float tensors in"):
            model(images["ref"], images["dist"])
    with pytest.raises(WeightsFormatError, match=r"^DreamSim has no head files \(LoRA is merged in\); got 2$"):
        model.load_head_parts([{}, {}])
    model.load_head_parts([])


def test_the_differentiable_path_uses_the_reference_cache():
    model = small_model()
    ref, dist = pairs()
    cache = model.make_reference_cache(2)
    with torch.no_grad():
        plain = model.differentiable_score({"ref": ref, "dist": dist})
        cached = model.differentiable_score({"ref": ref, "dist": dist}, reference_cache=cache)
    assert (cache.misses, cache.hits, len(cache)) == (3, 0, 2), "three references, at most two kept"
    torch.testing.assert_close(cached, plain, rtol=0, atol=1e-6)


def saved_tensors(model: DreamSim, ref: torch.Tensor, dist: torch.Tensor, **options: bool) -> tuple[int, torch.Tensor]:
    """(how many tensors autograd keeps for the backward pass, the gradient in `dist`)."""
    count = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        return tensor

    dist = dist.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        distance = model.differentiable_score({"ref": ref, "dist": dist}, **options)
    (gradient,) = torch.autograd.grad(distance.sum(), dist)  # what a reentrant checkpoint refuses
    return count, gradient


def test_checkpointing_keeps_fewer_activations_and_gives_the_same_gradient():
    model = small_model()
    ref, dist = pairs()
    plain, plain_gradient = saved_tensors(model, ref, dist)
    default, _ = saved_tensors(model, ref, dist, checkpoint_activations=False)
    kept, gradient = saved_tensors(model, ref, dist, checkpoint_activations=True)
    assert default == plain and kept < plain / 2, (plain, kept)
    assert float(plain_gradient.abs().max()) > 0
    torch.testing.assert_close(gradient, plain_gradient, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        distance = model.differentiable_score({"ref": ref, "dist": dist}, checkpoint_activations=True)
    torch.testing.assert_close(distance, model(ref, dist).detach(), rtol=0, atol=1e-6)


def test_opposite_embeddings_are_at_distance_2_not_above():
    a = normalize_embedding(torch.randn(1000, 80, generator=torch.Generator().manual_seed(0)))
    assert float((1 - F.cosine_similarity(a, -a, dim=-1)).max()) > 2, "rounding goes above 2 on these rows"
    distance = embedding_distance(a, -a)
    assert float(distance.max()) == 2.0 and float(distance.min()) > 2 - 1e-6


def test_the_normalisation_is_out_of_the_state_dict_and_every_branch_needs_its_encoder():
    model = small_model()
    assert set(model.state_dict()) == {f"encoders.dino.{name}" for name in model.encoders["dino"].state_dict()}
    with pytest.raises(WeightsFormatError, match=r"^DreamSim branch dino_vitb16 needs a 'dino' encoder$"):
        DreamSim(model.config, {"clip": model.encoders["dino"]})


PIXEL_ERRORS = {  # what encode() is given, and the message
    "uint8": (torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8), "pixels must be a float tensor [B, 3, S, S] in [0, 1]"),
    "a list": ([0.5], "pixels must be a float tensor [B, 3, S, S] in [0, 1]"),
    "not resized": (torch.zeros(1, 3, 224, 224), "pixels must be [B, 3, 112, 112] (resized); got (1, 3, 224, 224)"),
    "one image": (torch.zeros(3, SIZE, SIZE), "pixels must be [B, 3, 112, 112] (resized); got (3, 112, 112)"),
    "empty": (torch.zeros(0, 3, SIZE, SIZE), "pixels must be [B, 3, 112, 112] (resized); got (0, 3, 112, 112)"),
    "not normalised": (
        torch.full((1, 3, SIZE, SIZE), 2.0),
        "pixels (normalisation happens inside): float tensors must hold values in [0, 1]",
    ),
}


@pytest.mark.parametrize("case", list(PIXEL_ERRORS))
def test_encode_refuses_pixels_it_cannot_embed_by_name(case):
    pixels, message = PIXEL_ERRORS[case]
    with pytest.raises(InvalidInputError, match="^" + re.escape(message)):
        small_model().encode(pixels)


SPEC = BackboneSpec("timm", "small", path="x")
CONFIG_ERRORS = {  # the settings, and the message
    "unused backbone": (
        {"branches": ("dino_vitb16", "clip_vitb32"), "dino": SPEC, "clip": SPEC, "open_clip": SPEC},
        "DreamSim branches dino_vitb16, clip_vitb32: has no branch for a 'open_clip' backbone",
    ),
    "missing backbone": (
        {"branches": ("dino_vitb16", "clip_vitb32"), "dino": SPEC},
        "DreamSim branches dino_vitb16, clip_vitb32: needs a 'clip' backbone",
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_a_config_whose_backbones_do_not_fit_its_branches_is_refused_by_name(case):
    settings, message = CONFIG_ERRORS[case]
    count = len(settings["branches"])
    with pytest.raises(InvalidOptionError, match="^" + re.escape(message) + "$"):
        DreamSimConfig(model_type="x", means=((0.5,) * 3,) * count, stds=((0.5,) * 3,) * count, **settings)


def test_unknown_branch_and_model_names_list_the_known_ones():
    known = "dino_vitb16, clip_vitb16, clip_vitb32, open_clip_vitb16, open_clip_vitb32"
    with pytest.raises(InvalidOptionError, match=re.escape(f"unknown DreamSim branch 'dino'; known: {known}") + "$"):
        branch("dino")
    published = "ensemble, dino_vitb16, clip_vitb32, open_clip_vitb32"
    message = f"unknown DreamSim model type 'clip'; the published ones are {published}"
    with pytest.raises(InvalidOptionError, match=re.escape(message) + "$"):
        model_type_branches("clip")
