"""MST-CLIPIQA training: the reference recipe by hand, cached features, end to end."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from agiqa_synthetic import make_agiqa
from torch.utils.data import random_split

import semantic_iqa
from semantic_iqa.errors import DatasetError, InvalidOptionError, WeightsError
from semantic_iqa.feature_cache import FeatureStore
from semantic_iqa.metrics.mst_clipiqa.data import read_agiqa
from semantic_iqa.metrics.mst_clipiqa.features import CachedFeatures, MSTFeatureCache
from semantic_iqa.metrics.mst_clipiqa.model import MSTCLIPIQA
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa
from semantic_iqa.metrics.mst_clipiqa.train import (
    FeatureScorer,
    Recipe,
    checked_split,
    make_optimiser,
    pairwise_ranking_loss,
    recipe_loss,
    recipe_step,
    reference_split,
    train_from_folder,
    train_on_features,
)

QUICK = Recipe(epochs=3)  # the reference recipe, fewer epochs: end-to-end plumbing


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def agiqa(tmp_path_factory, photo) -> Path:
    return make_agiqa(tmp_path_factory.mktemp("agiqa") / "AGIQA-3K", photo)


@pytest.fixture(scope="module")
def model_a() -> MSTCLIPIQA:
    return build_random_mst_clipiqa("A", "tiny", seed=0)


@pytest.fixture(scope="module")
def model_b() -> MSTCLIPIQA:
    return build_random_mst_clipiqa("B", "tiny", seed=0)


# -- the recipe by hand -------------------------------------------------------------------------
@pytest.mark.parametrize("count", [7, 24, 2982])
def test_split_is_random_split_seeded_42(count):
    train, validation = reference_split(count)
    size = int(0.8 * count)
    parts = random_split(range(count), [size, count - size], generator=torch.Generator().manual_seed(42))
    assert train.tolist() == list(parts[0].indices) and validation.tolist() == list(parts[1].indices)
    # random_split is a permutation drawn from the generator, cut at int(0.8 N):
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(42)).tolist()
    assert train.tolist() == permutation[:size] and validation.tolist() == permutation[size:]
    if count == 2982:
        assert (len(train), len(validation)) == (2385, 597)


def test_a_split_without_two_validation_images_is_refused():
    with pytest.raises(DatasetError, match="gives 4 to train and 1 to validate"):
        checked_split(5, Recipe())
    assert [len(part) for part in checked_split(6, Recipe())] == [4, 2]


def test_ranking_loss_by_hand():
    q = torch.tensor([1.0, 0.55, 0.6])
    mos = torch.tensor([3.0, 3.0, 1.0])
    # Counted ordered pairs: (0,2), (2,0): relu(-0.4 + 0.1) = 0; (1,2), (2,1): relu(0.05 + 0.1) = 0.15.
    # The tie (0,1) and the diagonal are left out (with them the mean would be 0.5/6 or 0.8/9).
    assert float(pairwise_ranking_loss(q, mos)) == pytest.approx(0.3 / 4, abs=1e-7)
    one_pair = pairwise_ranking_loss(torch.tensor([0.2, 0.25]), torch.tensor([1.0, 2.0]))
    assert float(one_pair) == pytest.approx(0.05, abs=1e-7)  # (0.2 - 0.25) + 0.1, both orders
    q = torch.tensor([0.1, 0.9], requires_grad=True)
    none = pairwise_ranking_loss(q, torch.tensor([2.0, 2.0]))
    none.backward()
    assert float(none.detach()) == 0.0 and q.grad.abs().sum() == 0
    mos = torch.tensor([3.0, 3.0, 1.0])
    q = torch.tensor([1.0, 0.55, 0.6])
    expected = float(((q - mos) ** 2).mean()) + 0.075
    assert float(recipe_loss(q, mos, Recipe())) == pytest.approx(expected, abs=1e-6)


def _random_features(count: int, dim: int, seed: int, prompts: bool) -> CachedFeatures:
    generator = torch.Generator().manual_seed(seed)
    features = CachedFeatures(
        torch.randn(count, dim, generator=generator), torch.randn(count, dim, generator=generator)
    )
    if prompts:
        lengths = [3 + (7 * i) % 11 for i in range(max(2, count // 3))]
        features.prompt_states = [torch.randn(n, dim, generator=generator) for n in lengths]
        features.prompt_index = np.arange(count) % len(lengths)
    return features


def test_recipe_steps_are_adam_with_l2_weight_decay_by_hand(model_b):
    recipe = Recipe()
    torch.manual_seed(0)
    scorer = FeatureScorer(model_b).double()
    hand = copy.deepcopy(scorer)
    start = copy.deepcopy(scorer.state_dict())
    optimiser = make_optimiser(scorer, recipe)
    assert type(optimiser) is torch.optim.Adam and not optimiser.defaults["decoupled_weight_decay"]
    assert (optimiser.defaults["lr"], optimiser.defaults["weight_decay"]) == (5e-6, 1e-3)
    features = _random_features(16, 64, seed=1, prompts=True)
    features.coarse, features.fine = features.coarse.double(), features.fine.double()
    features.prompt_states = [s.double() for s in features.prompt_states]
    mos = torch.linspace(0.5, 4.5, 16, dtype=torch.float64)
    moments = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in hand.named_parameters()}
    (beta1, beta2), eps = (0.9, 0.999), 1e-8
    for step, rows in enumerate((torch.arange(0, 8), torch.tensor([9, 3, 15, 2, 11, 0, 6, 13])), start=1):
        inputs = features.batch(rows, "cpu")
        recipe_step(scorer, optimiser, inputs, mos[rows], recipe)
        names, params = zip(*hand.named_parameters(), strict=True)
        grads = torch.autograd.grad(recipe_loss(hand(**inputs), mos[rows], recipe), params)
        with torch.no_grad():
            for name, param, grad in zip(names, params, grads, strict=True):
                grad = grad + recipe.weight_decay * param  # Adam's L2 term, inside the moments
                first, second = moments[name]
                first.mul_(beta1).add_((1 - beta1) * grad)
                second.mul_(beta2).add_((1 - beta2) * grad * grad)
                m_hat, v_hat = first / (1 - beta1**step), second / (1 - beta2**step)
                param -= recipe.lr * m_hat / (v_hat.sqrt() + eps)
    for name, param in hand.named_parameters():
        torch.testing.assert_close(dict(scorer.named_parameters())[name], param, rtol=0, atol=1e-12)
    # alpha starts at 0, so the cross-attention gets no loss gradient on step 1: only the L2
    # term moves it, by about lr per step (AdamW would move it by lr * wd * |p|, ~1e-10).
    moved = (scorer.head.cross_attn.in_proj_weight - start["head.cross_attn.in_proj_weight"]).abs()
    assert float((moved > 1.5 * recipe.lr).double().mean()) > 0.9


def _learnable(count: int, variant: str) -> tuple[CachedFeatures, np.ndarray]:
    """Random features whose MOS follows two of their coordinates (a signal the head can find)."""
    features = _random_features(count, 64, seed=2, prompts=variant == "B")
    signal = features.coarse[:, 0] + features.fine[:, 1]
    return features, (2.5 + 2 * torch.tanh(signal / signal.std())).numpy().astype(np.float64)


@pytest.mark.parametrize("variant", ["A", "B"])
def test_training_on_features_lowers_the_loss_and_is_reproducible(variant, model_a, model_b):
    model = model_a if variant == "A" else model_b
    features, mos = _learnable(200, variant)
    recipe = Recipe(epochs=12, lr=3e-3)  # a faster lr than the reference, to see learning in 12 epochs
    result = train_on_features(model, features, mos, recipe, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 12 and losses[-1] < (0.4 if variant == "A" else 0.05) * losses[0], losses
    validation = [h["srocc"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmax(validation)) and result.figures["srocc"] == max(validation)
    assert max(validation) > validation[0] + 0.1, "the ranking of held-out images improved"
    assert set(result.head_state) == set(model.head_tensors()) and len(result.val_rows) == 40
    again = train_on_features(model, features, mos, recipe, progress=False)
    assert again.history == result.history
    assert all(torch.equal(again.head_state[k], v) for k, v in result.head_state.items())


def test_the_epoch_with_the_best_validation_srocc_is_kept(model_b, monkeypatch):
    import semantic_iqa.metrics.mst_clipiqa.train as train_module

    features, mos = _learnable(40, "B")
    recipe = Recipe(epochs=5, lr=1e-3)

    def run(scripted: list[float], epochs: int):
        values = iter(scripted)
        monkeypatch.setattr(train_module, "srocc", lambda predicted, labels: next(values))
        return train_on_features(model_b, features, mos, replace_epochs(recipe, epochs), progress=False)

    best = run([0.1, 0.5, 0.3, float("nan"), 0.5], 5)  # a later tie does not replace the first best
    assert best.best_epoch == 2 and best.figures["srocc"] == 0.5
    assert [h["srocc"] for h in best.history][:3] == [0.1, 0.5, 0.3]
    two_epochs = run([0.1, 0.5], 2)
    last = run([0.1, 0.2, 0.3, 0.4, 0.5], 5)
    assert last.best_epoch == 5
    assert all(torch.equal(best.head_state[k], two_epochs.head_state[k]) for k in best.head_state), "epoch 2's state"
    assert not torch.equal(best.head_state["fusion.W_h.weight"], last.head_state["fusion.W_h.weight"])
    scorer = FeatureScorer(model_b)
    scorer.load_state_dict(best.head_state)
    np.testing.assert_allclose(
        train_module.score_features(scorer, features, best.val_rows, "cpu"), best.val_predictions
    )


def replace_epochs(recipe: Recipe, epochs: int) -> Recipe:
    return Recipe(**{**asdict(recipe), "epochs": epochs})


# -- cached features ----------------------------------------------------------------------------
def test_feature_store_is_atomic_resumable_and_takes_any_shapes(tmp_path):
    store = FeatureStore(tmp_path, "model")
    store.write(
        {"k1": {"a": torch.ones(3), "b": torch.zeros(2, 5)}, "k2": {"a": torch.arange(4.0), "b": torch.ones(7, 5)}}
    )
    (store.folder / "shard-stray.partial").write_bytes(b"left by a killed run")
    (store.folder / "shard-damaged.safetensors").write_bytes(b"half a shard")
    reopened = FeatureStore(tmp_path, "model")
    assert "k1" in reopened and "k3" not in reopened and reopened.missing(["k3", "k1", "k3", "k4"]) == [0, 3]
    loaded = reopened.load(["k2", "k1"], ["a", "b"])
    assert loaded["a"][0].tolist() == [0, 1, 2, 3] and loaded["b"][0].shape == (7, 5) and loaded["b"][1].shape == (2, 5)
    assert FeatureStore(tmp_path, "other").missing(["k1"]) == [0], "another fingerprint shares nothing"
    with pytest.raises(ValueError, match="must not contain"):
        store.write({"a/b": {"x": torch.ones(1)}})


@pytest.mark.parametrize("variant", ["A", "B"])
def test_cached_features_score_as_the_model_does(variant, model_a, model_b, agiqa, tmp_path):
    model = model_a if variant == "A" else model_b
    data = read_agiqa(agiqa)
    paths, prompts = data.paths[:9], data.prompts[:9]
    cache = MSTFeatureCache(tmp_path, model)
    features, keys = cache.features(paths, prompts, batch_size=4, progress=False)
    assert cache.computed == 9 + (len(set(prompts)) if variant == "B" else 0) and len(set(keys)) == 9
    scorer = FeatureScorer(model)
    scorer.load_state_dict(model.head_tensors())
    from_cache = scorer(**features.batch(np.arange(9), "cpu"))
    direct = model.predict(paths, prompts if variant == "B" else None, batch_size=9).score
    assert float(direct.std()) > 0.2, "the tiny model spreads its scores"
    torch.testing.assert_close(from_cache, direct, rtol=0, atol=1e-4)


# -- end to end ---------------------------------------------------------------------------------
def test_train_from_folder_reports_exports_and_reuses_the_cache(agiqa, model_b, tmp_path, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "trained"
    result = train_from_folder(
        agiqa, out, labels="mos_align", backbones_from=model_b, recipe=QUICK, cache_dir=cache, progress=False
    )
    assert result.model.variant == "B", "mos_align trains the prompt-anchored variant by default"
    report = json.loads((out / "training" / "report.json").read_text())
    assert report["best_epoch"] == result.best_epoch and len(report["history"]) == 3
    assert (report["train_images"], report["validation_images"]) == (19, 5)
    rows = list(csv.DictReader((out / "training" / "val_predictions.csv").open()))
    assert [r["name"] for r in rows] == [read_agiqa(agiqa).names[i] for i in result.val_rows]
    if importlib.util.find_spec("matplotlib"):
        assert (out / "training" / "val_scatter.png").stat().st_size > 1000

    loaded = MSTCLIPIQA.from_pretrained(out, device="cpu")
    provenance = loaded.config.provenance
    assert provenance["labels"] == "mos_align" and provenance["seed"] == 42 and provenance["recipe"] == asdict(QUICK)
    assert len(provenance["data_sha256"]) == 64 and provenance["package_version"] == semantic_iqa.__version__
    data = read_agiqa(agiqa, "mos_align")
    val = result.val_rows
    scores = loaded.predict([data.paths[i] for i in val], [data.prompts[i] for i in val]).score
    np.testing.assert_allclose(scores.numpy(), result.val_predictions, atol=1e-4)

    shards = sorted(cache.rglob("shard-*.safetensors"))
    assert len({s.parent for s in shards}) == 2, "image and prompt features, one fingerprint folder each"

    def no_encoder_work(*args, **kwargs):
        raise AssertionError("an encoder ran although every feature was cached")

    for encoder in model_b.encoders.values():
        monkeypatch.setattr(encoder, "forward", no_encoder_work)
    again = train_from_folder(
        agiqa,
        tmp_path / "again",
        labels="mos_align",
        backbones_from=model_b,
        recipe=QUICK,
        cache_dir=cache,
        progress=False,
    )
    assert sorted(cache.rglob("shard-*.safetensors")) == shards
    assert json.loads((tmp_path / "again" / "training" / "report.json").read_text()) == report, "same seed, same run"
    assert again.best_epoch == result.best_epoch


def test_train_from_folder_refuses_before_any_work(agiqa, model_a, model_b, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    cache = tmp_path / "cache"
    options = {"recipe": QUICK, "cache_dir": cache, "progress": False}
    with pytest.raises(WeightsError, match="refusing to write weights into"):
        train_from_folder(agiqa, occupied, backbones_from=model_a, **options)
    with pytest.raises(InvalidOptionError, match="base model is variant B but variant A"):
        train_from_folder(agiqa, tmp_path / "o", labels="mos_align", variant="A", backbones_from=model_b, **options)
    with pytest.raises(InvalidOptionError, match="unknown labels"):
        train_from_folder(agiqa, tmp_path / "o", labels="beauty", backbones_from=model_a, **options)
    bad = Path(shutil.copytree(agiqa, tmp_path / "bad"))
    (bad / "gen0_000.png").unlink()
    with pytest.raises(DatasetError, match="gen0_000.png is missing"):
        train_from_folder(bad, tmp_path / "o", backbones_from=model_a, **options)
    assert not cache.exists(), "no feature was extracted"
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]


def test_quality_labels_train_variant_a_on_the_towers_of_a_weights_folder(agiqa, model_a, tmp_path):
    towers = model_a.save_pretrained(tmp_path / "tiny-a")
    out = tmp_path / "trained"
    result = train_from_folder(
        agiqa, out, backbones_from=towers, recipe=QUICK, cache_dir=tmp_path / "cache", device="cpu", progress=False
    )
    loaded = MSTCLIPIQA.from_pretrained(out, device="cpu")
    assert loaded.variant == "A" and loaded.config.provenance["backbones_from"] == str(towers)
    assert loaded.config.provenance["labels"] == "mos_quality"
    data = read_agiqa(agiqa)
    scores = loaded.predict([data.paths[i] for i in result.val_rows]).score.numpy()
    np.testing.assert_allclose(scores, result.val_predictions, atol=1e-4)
    assert ((scores >= 1) & (scores <= 5)).all()
