"""DreamSim converted from its authors' release gives the authors' own distances and embeddings (issue 22).

`tests/dreamsim_release.py` writes the release layout with random full-size weights and a
random LoRA (peft's own `save_pretrained`), builds the authors' model on it with their own
`dreamsim(pretrained=True, ...)` (only its torch.hub download of DINO is stood in for), and
`convert-dreamsim` converts it. Both then score the same image files of several sizes and
aspect ratios (PNG and JPEG, one greyscale): the authors' `model(a, b)` on their
`preprocess(PIL)` against `semantic_iqa` on the paths. The weights are random: the figures
printed are agreement figures, not accuracy.

What each check would catch: the LoRA merge (the authors' model with its adapter disabled
differs by more than 100 x the tolerance), the DINO feature (pre-norm CLS of block 11), the
CLIP branches (ln_pre, QuickGELU, eps, projection, patch bias), normalisation and centring.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb
from dreamsim_release import authors_model, shared_release, zip_release
from PIL import Image, ImageFilter

import semantic_iqa
from semantic_iqa.metrics.dreamsim.convert import convert_dreamsim

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def images(tmp_path_factory, photo) -> dict[str, Path]:
    """Photo-like files of different sizes, aspect ratios and formats."""
    root = tmp_path_factory.mktemp("dreamsim-images")
    ref = photo.resize((320, 240))
    files = {
        "ref.png": ref,
        "blur.jpg": ref.filter(ImageFilter.GaussianBlur(3)),
        "portrait.png": photo.crop((40, 0, 200, 256)).resize((150, 260)),
        "dim.jpg": ref.point(lambda v: int(v * 0.6)),
        "grey.jpg": ref.rotate(20).convert("L"),
        "noise.png": random_rgb(300, 180, seed=5),
    }
    for name, image in files.items():
        image.save(root / name, **({"quality": 92} if name.endswith(".jpg") else {}))
    return {name.split(".")[0]: root / name for name in files}


def pairs_of(images: dict[str, Path]) -> tuple[list[Path], list[Path]]:
    """Four pairs: each image with another, of another size or format."""
    refs, dists = ["ref", "ref", "portrait", "noise"], ["blur", "grey", "dim", "ref"]
    return [images[name] for name in refs], [images[name] for name in dists]


def authors_distances(model, preprocess, refs: list[Path], dists: list[Path]) -> torch.Tensor:
    a = torch.cat([preprocess(Image.open(path)) for path in refs])
    b = torch.cat([preprocess(Image.open(path)) for path in dists])
    with torch.no_grad():
        return model(a, b)


def authors_embeddings(model, preprocess, paths: list[Path]) -> torch.Tensor:
    with torch.no_grad():
        return model.embed(torch.cat([preprocess(Image.open(path)) for path in paths]))


def check_spread(distances: torch.Tensor) -> None:
    """The distances differ from each other by far more than the tolerance (a mix-up would show)."""
    gaps = np.diff(np.sort(distances.numpy()))
    assert gaps.min() > 100 * TOLERANCE, distances


@pytest.fixture(scope="module")
def ensemble(request, tmp_path_factory):
    """The ensemble release (an unpacked folder), converted, and the authors' model on it; ours loaded once."""
    folder = shared_release(request, "ensemble")
    weights = convert_dreamsim(folder, tmp_path_factory.mktemp("dreamsim-ensemble") / "weights")
    model, preprocess = authors_model(folder, "ensemble")
    ours = semantic_iqa.create_metric("dreamsim", weights=weights, device="cpu")
    yield {"model": model, "preprocess": preprocess, "ours": ours}
    shutil.rmtree(weights, ignore_errors=True)  # 1 GB


def test_ensemble_distances_equal_the_authors(ensemble, images):
    refs, dists = pairs_of(images)
    theirs = authors_distances(ensemble["model"], ensemble["preprocess"], refs, dists)
    ours = ensemble["ours"].predict(refs, dists).score
    gap = float((ours - theirs).abs().max())
    print(f"\nDreamSim ensemble, {len(refs)} pairs of files: max |ours - authors'| distance = {gap:.2e}")
    print(f"  authors': {[round(v, 4) for v in theirs.tolist()]} (random weights: meaningless values)")
    assert gap <= TOLERANCE
    check_spread(theirs)
    assert ensemble["ours"].config.provenance["lora"]["merged_layers"] == 36  # qkv of 12 blocks x 3 branches


def test_ensemble_embeddings_equal_the_authors(ensemble, images):
    paths = [images["portrait"], images["grey"]]
    theirs = authors_embeddings(ensemble["model"], ensemble["preprocess"], paths)
    ours = ensemble["ours"].embed(paths)
    gap = float((ours - theirs).abs().max())
    print(f"\nDreamSim ensemble embeddings {tuple(ours.shape)}: max |ours - authors'| = {gap:.2e}")
    assert ours.shape == theirs.shape == (2, 1792)
    assert gap <= TOLERANCE
    with torch.no_grad(), ensemble["model"].disable_adapter():  # without the LoRA: far off
        base = authors_embeddings(ensemble["model"], ensemble["preprocess"], paths)
    assert float((base - theirs).abs().max()) > 100 * TOLERANCE


def test_single_branch_clip_vitb32_equals_the_authors(request, tmp_path, images):
    folder = shared_release(request, "clip_vitb32")
    archive = zip_release(folder, tmp_path / "dreamsim_clip_vitb32_checkpoint.zip", top="models")  # as downloaded
    weights = convert_dreamsim(archive, tmp_path / "weights")
    model, preprocess = authors_model(folder, "clip_vitb32")
    refs, dists = pairs_of(images)
    theirs = authors_distances(model, preprocess, refs, dists)
    ours = semantic_iqa.score(refs, dists, metric="dreamsim", weights=weights, device="cpu")
    gap = float((ours - theirs).abs().max())
    paths = [images["ref"], images["noise"]]
    ours_embedded = semantic_iqa.create_metric("dreamsim", weights=weights, device="cpu").embed(paths)
    embedding_gap = float((ours_embedded - authors_embeddings(model, preprocess, paths)).abs().max())
    print(f"\nDreamSim clip_vitb32: max |ours - authors'| distance = {gap:.2e}, embedding = {embedding_gap:.2e}")
    assert gap <= TOLERANCE and embedding_gap <= TOLERANCE
    check_spread(theirs)
    with torch.no_grad(), model.disable_adapter():
        base = authors_distances(model, preprocess, refs, dists)
    assert float((base - theirs).abs().max()) > 100 * TOLERANCE
    shutil.rmtree(tmp_path, ignore_errors=True)  # the zip and the weights: 700 MB
