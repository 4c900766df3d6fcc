"""DreamSim itself: the embedding, the distance, the branches, the preprocessing, the weights folder.

Each check is against a hand computation or timm's own code, on the tiny ensemble (random
weights: the distances check plumbing, not accuracy) and, where the issue's traps are about
the reference sizes (DINO's block 11, CLIP's eps and QuickGELU), on full-size ViT-Bs. The
pairs and fixtures: tests/dreamsim_testing.py; every other layer: tests/test_dreamsim_layers.py.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dreamsim_testing import EXAMPLES, PAIRS, as_tensor, reference_image
from PIL import Image, ImageOps

import semantic_iqa
from semantic_iqa.errors import WeightsConfigError, WeightsFormatError, WeightsIntegrityError
from semantic_iqa.metrics.dreamsim import DreamSim, DreamSimConfig
from semantic_iqa.metrics.dreamsim.model import embedding_distance
from semantic_iqa.metrics.dreamsim.preprocess import load_squashed, squash_tensor
from semantic_iqa.metrics.dreamsim.tiny import build_random_dreamsim, build_tiny
from semantic_iqa.registry import default_metric, metric_info

pytest_plugins = ["dreamsim_testing"]  # fixtures: dreamsim_dir, dreamsim, pair_dirs, expected, pair_batches


def squashed(batch: torch.Tensor) -> torch.Tensor:
    return squash_tensor(batch, 224)


def branch_features(model: DreamSim, pixels: torch.Tensor) -> list[torch.Tensor]:
    """Each branch's feature of resized pixels, each normalised with its own mean and std."""
    features = []
    for index, encoder in enumerate(model.encoders.values()):
        mean = torch.tensor(model.config.means[index]).view(1, 3, 1, 1)
        std = torch.tensor(model.config.stds[index]).view(1, 3, 1, 1)
        features.append(encoder((pixels - mean) / std))
    return features


def hand_embedding(model: DreamSim, pixels: torch.Tensor) -> torch.Tensor:
    """The authors' recipe written out: the branches' features concatenated, centred, L2-normalised."""
    joined = torch.cat(branch_features(model, pixels), dim=1)
    joined = joined - joined.mean(dim=1, keepdim=True)
    return joined / joined.norm(dim=1, keepdim=True)


@torch.no_grad()
def test_the_embedding_is_the_centred_unit_concatenation_of_the_branches(dreamsim, pair_batches):
    pixels = squashed(torch.cat(pair_batches))
    embedding = dreamsim.encode(pixels)
    assert embedding.shape == (10, dreamsim.embedding_dim) and dreamsim.embedding_dim == 32 + 24 + 24
    assert embedding.mean(dim=1).abs().max() < 1e-7
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(10), rtol=0, atol=1e-6)
    torch.testing.assert_close(embedding, hand_embedding(dreamsim, pixels), rtol=0, atol=1e-6)


@torch.no_grad()
def test_the_distance_is_one_minus_cosine_in_0_2_zero_for_itself_and_symmetric(dreamsim, pair_batches, expected):
    ref, dist = pair_batches
    distance = dreamsim(ref, dist)
    a, b = dreamsim.encode(squashed(ref)), dreamsim.encode(squashed(dist))
    torch.testing.assert_close(distance, 1 - (a * b).sum(dim=1), rtol=0, atol=1e-6)
    torch.testing.assert_close(distance, (a - b).pow(2).sum(dim=1) / 2, rtol=0, atol=1e-6)  # what embed's doc says
    assert ((distance >= 0) & (distance <= 2)).all() and float(distance.max() - distance.min()) > 0.9
    torch.testing.assert_close(dreamsim(dist, ref), distance, rtol=0, atol=1e-6)
    assert torch.equal(dreamsim(dist, dist), torch.zeros(5)), "an image and itself: exactly 0 (rounding clamped)"
    assert torch.equal(embedding_distance(a, -a), torch.full((5,), 2.0))
    torch.testing.assert_close(distance, torch.tensor([expected[name] for name in PAIRS]), rtol=0, atol=5e-3)


def with_branches(model: DreamSim, branches: tuple[str, ...], means, stds) -> DreamSim:
    """The same encoders (shared, unchanged) under another branch order and normalisations."""
    config = DreamSimConfig(
        model_type="reordered", branches=branches, means=means, stds=stds,
        dino=model.config.dino, clip=model.config.clip, open_clip=model.config.open_clip,
    )  # fmt: skip
    return DreamSim(config, dict(model.encoders)).eval()


@torch.no_grad()
def test_what_the_branch_order_changes(dreamsim, pair_batches):
    """Reordering permutes the embedding's columns, which centring, norm and cosine ignore: the same
    distances. What matters is that each branch keeps its own normalisation, and that the centring
    is over the whole concatenation (not per branch)."""
    ref, dist = pair_batches
    config = dreamsim.config
    reordered = with_branches(dreamsim, config.branches[::-1], config.means[::-1], config.stds[::-1])
    torch.testing.assert_close(reordered(ref, dist), dreamsim(ref, dist), rtol=0, atol=1e-6)
    pixels = squashed(dist)
    widths = [encoder.feature_dim for encoder in dreamsim.encoders.values()]
    parts = dreamsim.encode(pixels).split(widths, dim=1)
    torch.testing.assert_close(reordered.encode(pixels), torch.cat(parts[::-1], dim=1), rtol=0, atol=1e-6)

    swapped_norms = with_branches(dreamsim, config.branches[::-1], config.means, config.stds)
    assert (swapped_norms(ref, dist) - dreamsim(ref, dist)).abs().max() > 0.02  # measured 0.046

    def per_branch(images: torch.Tensor) -> torch.Tensor:  # each branch centred and normalised on its own
        features = branch_features(dreamsim, squashed(images))
        return torch.cat([F.normalize(f - f.mean(dim=1, keepdim=True), dim=1) for f in features], dim=1) / 3**0.5

    assert (embedding_distance(per_branch(ref), per_branch(dist)) - dreamsim(ref, dist)).abs().max() > 0.05


@pytest.fixture(scope="module")
def photo_224() -> torch.Tensor:
    return as_tensor(Image.open(EXAMPLES / "ref.png").convert("RGB").resize((224, 224)))


@torch.no_grad()
def test_the_dino_branch_is_block_11s_cls_token_before_the_final_norm(photo_224):
    """Full size (ViT-B/16, 12 blocks, random weights): timm's own intermediates give the reference."""
    model = build_random_dreamsim("dino_vitb16", "full", seed=0)
    vit = model.encoders["dino"].model
    assert len(vit.blocks) == 12 and vit.embed_dim == 768 and vit.blocks[0].norm1.eps == 1e-6
    pixels = (photo_224.unsqueeze(0) - torch.tensor(model.config.means[0]).view(1, 3, 1, 1)) / torch.tensor(
        model.config.stds[0]
    ).view(1, 3, 1, 1)
    feature = model.encoders["dino"](pixels)
    (block_11,) = vit.forward_intermediates(pixels, indices=[11], norm=False, intermediates_only=True,
                                            output_fmt="NLC", return_prefix_tokens=True)  # fmt: skip
    cls_token = block_11[1][:, 0]
    assert feature.shape == (1, 768) and torch.equal(feature, cls_token)
    assert (F.layer_norm(cls_token, (768,), eps=1e-6) - feature).abs().max() > 0.1, "after a norm it would differ"
    (block_10,) = vit.forward_intermediates(pixels, indices=[10], norm=False, intermediates_only=True,
                                            output_fmt="NLC", return_prefix_tokens=True)  # fmt: skip
    assert (block_10[1][:, 0] - feature).abs().max() > 0.1, "another block's token would differ"


@torch.no_grad()
@pytest.mark.parametrize("role", ["clip", "open_clip"])
def test_a_clip_branch_is_the_normed_cls_token_times_the_projection(dreamsim, photo_224, role):
    vit = dreamsim.encoders[role].model
    pixels = photo_224.unsqueeze(0) * 2 - 1
    (tokens,) = vit.forward_intermediates(pixels, indices=[len(vit.blocks) - 1], norm=True, intermediates_only=True,
                                          output_fmt="NLC", return_prefix_tokens=True)  # fmt: skip
    assert isinstance(vit.norm_pre, torch.nn.LayerNorm), "CLIP's ln_pre before the blocks"
    assert torch.equal(vit.head.bias, torch.zeros_like(vit.head.bias))
    expected = tokens[1][:, 0] @ vit.head.weight.T
    torch.testing.assert_close(dreamsim.encoders[role](pixels), expected, rtol=0, atol=1e-5)
    assert (dreamsim.encoders[role](pixels) - tokens[0][:, 0] @ vit.head.weight.T).abs().max() > 0.1, "not a patch"


def test_the_full_size_branches_are_the_reference_architectures():
    """Built on the meta device (no memory, no time): the sizes, norms and activations the issue names."""
    with torch.device("meta"):
        ensemble = build_random_dreamsim("ensemble", "full")
        single = {name: build_random_dreamsim(name, "full") for name in ("clip_vitb32", "open_clip_vitb32")}
    assert ensemble.embedding_dim == 768 + 512 + 512 and ensemble.config.branches == (
        "dino_vitb16", "clip_vitb16", "open_clip_vitb16",
    )  # fmt: skip
    activations = {"dino": "GELU", "clip": "QuickGELU", "open_clip": "GELU"}
    for role, encoder in ensemble.encoders.items():
        vit = encoder.model
        assert (len(vit.blocks), vit.embed_dim, vit.patch_embed.proj.kernel_size) == (12, 768, (16, 16)), role
        assert type(vit.blocks[0].mlp.act).__name__ == activations[role], role
        norms = [m for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert {m.eps for m in norms} == ({1e-6} if role == "dino" else {1e-5}), role
        assert role == "dino" or (isinstance(vit.norm_pre, torch.nn.LayerNorm) and vit.head.out_features == 512)
    for name, model in single.items():
        (vit,) = [encoder.model for encoder in model.encoders.values()]
        assert vit.patch_embed.proj.kernel_size == (32, 32) and model.embedding_dim == 512, name


def test_preprocessing_squashes_to_224_with_pils_bicubic(dreamsim, tmp_path):
    """A 300 x 120 image is resized to 224 x 224, aspect not kept: not padded, not cropped."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(120, 300, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # red left edge, blue right edge, green top rows: a crop or a pad loses them
    pixels[:, -20:] = (0, 0, 255)
    pixels[:10] = (0, 255, 0)
    image = Image.fromarray(pixels)
    image.save(tmp_path / "wide.png")
    expected = as_tensor(image.resize((224, 224), Image.Resampling.BICUBIC))
    for given in (image, tmp_path / "wide.png", pixels):
        assert torch.equal(dreamsim.image_transform()(given), expected)
    assert torch.equal(load_squashed(image), expected) and expected.shape == (3, 224, 224)
    padded = ImageOps.pad(image, (300, 300), color=(0, 0, 0)).resize((224, 224), Image.Resampling.BICUBIC)
    cropped = ImageOps.fit(image, (224, 224), Image.Resampling.BICUBIC)
    for other in (padded, cropped):
        assert (as_tensor(other) - expected).abs().max() > 0.5


def test_the_float_tensor_path_matches_the_pil_path_within_pils_rounding(dreamsim, pair_dirs, expected):
    ref = reference_image()
    gap = (load_squashed(as_tensor(ref)) - load_squashed(ref)).abs().max()
    assert 0 < gap <= 1.5 / 255  # PIL rounds to 8 bits (measured 1.04 / 255)
    refs, dists = ([as_tensor(Image.open(folder / f"{name}.png")) for name in PAIRS] for folder in pair_dirs)
    with torch.no_grad():
        distances = dreamsim(torch.stack(refs), torch.stack(dists))
    torch.testing.assert_close(distances, torch.tensor([expected[n] for n in PAIRS]), rtol=0, atol=5e-3)  # 1.7e-3


def test_saved_and_loaded_the_distances_are_the_same_and_every_file_is_checked(dreamsim_dir, pair_dirs, tmp_path):
    refs, dists = ([folder / f"{name}.png" for name in PAIRS] for folder in pair_dirs)
    built = build_tiny(seed=0).predict(refs, dists).score
    loaded = semantic_iqa.create_metric("dreamsim", weights=dreamsim_dir, device="cpu")
    again = DreamSim.from_pretrained(loaded.save_pretrained(tmp_path / "again"), device="cpu")
    assert torch.equal(loaded.predict(refs, dists).score, built) and torch.equal(
        again.predict(refs, dists).score, built
    )
    assert not torch.equal(build_tiny(seed=1).predict(refs, dists).score, built), "the seed must matter"
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == [
        "README.md",
        "clip",
        "config.json",
        "dino",
        "open_clip",
    ], "no empty heads/ folder: DreamSim's LoRA is merged into its backbones"
    damaged = shutil.copytree(dreamsim_dir, tmp_path / "damaged")
    weights = damaged / "open_clip" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="open_clip/model.safetensors: sha256"):
        DreamSim.from_pretrained(damaged, device="cpu")


THREE = ["dino_vitb16", "clip_vitb16", "clip_vitb32"]
CONFIG_ERRORS = {  # the change to config.json, and what the error says
    "unknown branch": ({"branches": ["dino_vitb16", "dino_vitb99"]}, "unknown DreamSim branch 'dino_vitb99'"),
    "two of one role": ({"branches": THREE}, "at most one branch per role; got " + ", ".join(THREE)),
    "no backbone": ({"clip": None}, "needs a 'clip' backbone"),
    "means count": ({"means": "first two"}, "one mean and one std per branch: 3 branches, 2 means, 3 stds"),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_a_wrong_config_is_a_typed_error_naming_the_entry(dreamsim_dir, tmp_path, case):
    folder = shutil.copytree(dreamsim_dir, tmp_path / "w")
    raw = json.loads((folder / "config.json").read_text())
    change, message = CONFIG_ERRORS[case]
    if change.get("means") == "first two":
        change = {"means": raw["means"][:2]}
    (folder / "config.json").write_text(json.dumps({**raw, **change}))
    with pytest.raises(WeightsFormatError, match=message.replace("(", r"\(")):
        semantic_iqa.create_metric("dreamsim", weights=folder, device="cpu")
    (folder / "config.json").write_text(json.dumps({**raw, "stds": [[0.2, 0.2], *raw["stds"][1:]]}))
    with pytest.raises(WeightsConfigError, match="stds is .*expected a list of 1 to 3 items, each a list of 3 items"):
        semantic_iqa.create_metric("dreamsim", weights=folder, device="cpu")


def test_bf16_branches_stay_within_0_01_of_fp32(dreamsim_dir, pair_dirs, expected):
    refs, dists = ([folder / f"{name}.png" for name in PAIRS] for folder in pair_dirs)
    model = DreamSim.from_pretrained(dreamsim_dir, device="cpu").set_precision("bf16")
    assert model.precision == "bf16"
    distances = model.predict(refs, dists).score
    gaps = (distances - torch.tensor([expected[name] for name in PAIRS])).abs()
    assert gaps.max() <= 0.01 and gaps.max() > 0, gaps  # bf16 really ran (measured 5e-3)


@torch.no_grad()
def test_the_reference_cache_gives_the_same_distances_and_counts_hits(dreamsim, pair_batches):
    ref, dist = (squashed(batch) for batch in pair_batches)  # the five references are one image
    plain = dreamsim.score_batch({"ref": ref, "dist": dist}, {}).score
    cache = dreamsim.make_reference_cache()
    first = dreamsim.score_batch({"ref": ref, "dist": dist}, {}, reference_cache=cache).score
    assert (cache.misses, cache.hits, len(cache)) == (1, 4, 1)
    second = dreamsim.score_batch({"ref": ref, "dist": dist}, {}, reference_cache=cache).score
    assert (cache.misses, cache.hits) == (1, 9)
    torch.testing.assert_close(first, plain, rtol=0, atol=1e-6)
    torch.testing.assert_close(second, plain, rtol=0, atol=1e-6)
    swapped = dreamsim.score_batch({"ref": dist, "dist": ref}, {}, reference_cache=cache).score
    assert (cache.misses, cache.hits, len(cache)) == (6, 9, 6)  # five new references
    torch.testing.assert_close(swapped, plain, rtol=0, atol=1e-6)  # symmetric, through the cache too


def test_the_default_metric_is_still_dss_sqa(dreamsim_dir):
    assert default_metric() == "dss_sqa" and not metric_info("dreamsim").package_default
    with pytest.raises(WeightsFormatError, match="holds 'dreamsim' weights, not 'dss_sqa'"):
        semantic_iqa.score(reference_image(), reference_image(), weights=dreamsim_dir)
