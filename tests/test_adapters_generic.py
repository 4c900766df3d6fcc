"""The loss, torchmetrics and pyiqa adapters take ANY registered metric: here two toys registered
at run time (tests/adapter_toys.py), one full-reference and lower-is-better, one no-reference,
each with a scoring option; everything the adapters need comes from the registry entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from adapter_toys import TOY_FR, TOY_NR, TOY_PROMPT, ToyBrightness, ToyConfig, ToyDistance, expected_distance

from semantic_iqa import register_metric
from semantic_iqa.errors import InvalidInputError, InvalidOptionError, UnknownOptionError
from semantic_iqa.integrations.loss import NoReferenceQualityLoss, QualityLoss
from semantic_iqa.registry import unregister_metric


@pytest.fixture(scope="module")
def toys(tmp_path_factory: pytest.TempPathFactory):
    """The toys registered (and removed after), with a weights folder and a loaded model each."""
    for info in (TOY_FR, TOY_NR, TOY_PROMPT):
        register_metric(info)
    folder = tmp_path_factory.mktemp("toys")
    fr, nr = ToyDistance(ToyConfig()).eval(), ToyBrightness(ToyConfig()).eval()
    yield {"fr": (fr, fr.save_pretrained(folder / "fr")), "nr": (nr, nr.save_pretrained(folder / "nr"))}
    for info in (TOY_FR, TOY_NR, TOY_PROMPT):
        unregister_metric(info.name)


@pytest.fixture(scope="module")
def pair():
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 3, 12, 20, generator=generator)
    return ref, (ref * torch.tensor([0.2, 0.6, 1.0]).view(3, 1, 1, 1)).clamp(0, 1)  # darker by 80 %, 40 %, 0


# -- loss ----------------------------------------------------------------------------------------
def test_full_reference_loss_is_the_metrics_training_loss_with_its_option(toys, pair):
    model, _ = toys["fr"]
    ref, dist = pair
    expected = expected_distance(model, ref, dist)
    assert float(expected[0]) > 2.0 and float(expected[2]) == 0.0  # measured: 2.39, 1.19, 0 (margin 1 matters)
    loss = QualityLoss("toy_adapter_fr", model=model, reduction="none")
    torch.testing.assert_close(loss(dist, ref), expected, rtol=0, atol=1e-6)
    margin = QualityLoss("toy_adapter_fr", model=model, reduction="none", margin=1.0)
    torch.testing.assert_close(margin(dist, ref), (expected - 1.0).clamp(min=0), rtol=0, atol=1e-6)
    image, reference = dist.clone().requires_grad_(True), ref.clone().requires_grad_(True)
    QualityLoss("toy_adapter_fr", model=model)(image, reference).backward()
    assert image.grad.abs().sum() > 0 and reference.grad is None, "gradients reach the scored images only"
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())


def test_reference_cache_of_a_plug_in_gives_identical_values(toys, pair):
    model, _ = toys["fr"]
    ref, dist = pair
    cached = QualityLoss("toy_adapter_fr", model=model, cache_references=True, reduction="none")
    plain = QualityLoss("toy_adapter_fr", model=model, reduction="none")
    for _ in range(2):
        torch.testing.assert_close(cached(dist, ref), plain(dist, ref), rtol=0, atol=0)
    assert (cached.reference_cache.misses, cached.reference_cache.hits) == (3, 3)


def test_no_reference_loss_reads_direction_and_range_off_the_entry(toys):
    model, folder = toys["nr"]
    images = torch.rand(2, 3, 10, 14, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.3, 1.0]).view(
        2, 1, 1, 1
    )
    with torch.no_grad():
        score = model.differentiable_score({"image": images})
    assert float(score[1] - score[0]) > 0.5
    for loss in (
        QualityLoss("toy_adapter_nr", folder, reduction="none"),
        NoReferenceQualityLoss("toy_adapter_nr", model=model, reduction="none"),
    ):
        torch.testing.assert_close(loss(images), 5 - score, rtol=0, atol=1e-6)


def test_the_loss_refuses_what_does_not_fit(toys, pair):
    model, _ = toys["fr"]
    ref, dist = pair
    with pytest.raises(UnknownOptionError, match="no option 'margn'.*its options: margin"):
        QualityLoss("toy_adapter_fr", model=model, margn=1.0)
    with pytest.raises(UnknownOptionError, match="gate_penalty is an option of dss_sqa"):
        QualityLoss("toy_adapter_fr", model=model, gate_penalty=1.0)
    with pytest.raises(InvalidOptionError, match="margin must be float"):
        QualityLoss("toy_adapter_fr", model=model, margin="wide")
    with pytest.raises(InvalidInputError, match="pass the references too"):
        QualityLoss("toy_adapter_fr", model=model)(dist)
    with pytest.raises(InvalidInputError, match="takes no prompts"):
        QualityLoss("toy_adapter_fr", model=model)(dist, ref, prompts=["a", "b", "c"])
    nr_model, _ = toys["nr"]
    with pytest.raises(InvalidInputError, match="no-reference metric: pass the images alone"):
        QualityLoss("toy_adapter_nr", model=nr_model)(dist, ref)
    with pytest.raises(InvalidOptionError, match="full-reference"):
        NoReferenceQualityLoss("toy_adapter_fr", model=model)
    with pytest.raises(InvalidOptionError, match="needs a ToyDistance model"):
        QualityLoss("toy_adapter_fr", model=nr_model)


def test_a_users_optimizer_and_train_mode_leave_a_plug_in_metric_unchanged(toys, pair):
    model, _ = toys["fr"]
    ref, dist = pair
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    user = torch.nn.Module()
    user.net, user.loss = torch.nn.Conv2d(3, 3, 1), QualityLoss("toy_adapter_fr", model=model)
    optimiser = torch.optim.SGD(user.parameters(), lr=0.5)
    user.train()
    for _ in range(3):
        optimiser.zero_grad()
        user.loss(user.net(dist).clamp(0, 1), ref).backward()
        optimiser.step()
    assert not model.training and not model.norm.training
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert set(user.state_dict()) == {"net.weight", "net.bias"}


# -- torchmetrics --------------------------------------------------------------------------------
def test_full_reference_torchmetrics_metric_of_a_plug_in(toys, pair):
    pytest.importorskip("torchmetrics")
    from semantic_iqa.integrations.torchmetrics import FullReferenceQualityMetric

    model, folder = toys["fr"]
    ref, dist = pair
    metric = FullReferenceQualityMetric("toy_adapter_fr", folder, correlation=True, mode="square")
    for _ in range(2):  # two "epochs" over the same references
        metric.update(dist, ref, torch.tensor([1.0, 2.0, 3.0]))
    result = metric.compute()
    expected = expected_distance(model, ref, dist, square=True)
    torch.testing.assert_close(result["score"], expected.mean(), rtol=0, atol=1e-6)
    assert result["srocc"].item() == pytest.approx(-1.0)  # lower distance, higher label
    assert metric.higher_is_better is False and (metric.plot_lower_bound, metric.plot_upper_bound) == (0.0, None)
    assert (metric.reference_cache.misses, metric.reference_cache.hits) == (3, 3)
    holder = torch.nn.Module()
    holder.metric = metric
    assert sum(v.numel() for v in holder.state_dict().values()) == 0


def test_torchmetrics_refuses_options_by_name(toys):
    pytest.importorskip("torchmetrics")
    from semantic_iqa.integrations.torchmetrics import FullReferenceQualityMetric, NoReferenceQualityMetric

    _, folder = toys["fr"]
    with pytest.raises(UnknownOptionError, match="gate is an option of dss_sqa"):
        FullReferenceQualityMetric("toy_adapter_fr", folder, gate="soft")
    with pytest.raises(UnknownOptionError, match="mdoe.*options of toy_adapter_fr: mode"):
        FullReferenceQualityMetric("toy_adapter_fr", folder, mdoe="square")
    with pytest.raises(InvalidOptionError, match="unknown mode 'cube'"):
        FullReferenceQualityMetric("toy_adapter_fr", folder, mode="cube")
    with pytest.raises(InvalidOptionError, match="no-reference"):
        FullReferenceQualityMetric("toy_adapter_nr", toys["nr"][1])
    metric = NoReferenceQualityMetric("toy_adapter_nr", model=toys["nr"][0], channel="red", sync_on_compute=False)
    images = torch.zeros(2, 3, 8, 8)
    images[:, 1:] = 1.0  # green and blue only: "red" sees a black image
    metric.update(images)
    assert metric.compute().item() == pytest.approx(1 + 4 * torch.sigmoid(torch.tensor(-1.0)).item(), abs=1e-6)


# -- pyiqa ---------------------------------------------------------------------------------------
@pytest.fixture
def pyiqa_with_toys(toys):
    pyiqa = pytest.importorskip("pyiqa")
    from semantic_iqa.integrations.pyiqa import register

    configs = pyiqa.default_model_configs.DEFAULT_CONFIGS
    before = set(configs)
    register()  # again, after the toys' register_metric
    yield pyiqa
    for name in set(configs) - before:  # other tests see pyiqa's registry as it was
        del configs[name]


def test_pyiqa_offers_every_entry_it_can_call(pyiqa_with_toys):
    configs = pyiqa_with_toys.default_model_configs.DEFAULT_CONFIGS
    fr, nr = configs["toy_adapter_fr"], configs["toy_adapter_nr"]
    assert (fr["metric_mode"], fr["lower_better"], "score_range" in fr) == ("FR", True, False)
    assert (nr["metric_mode"], nr["lower_better"], nr["score_range"]) == ("NR", False, "1, 5")
    assert configs["toy_adapter_fr_square"]["metric_opts"]["mode"] == "square"
    assert "toy_adapter_prompt" not in configs, "pyiqa's calls have no place for a prompt"


def test_pyiqa_scores_a_plug_in_with_its_options(toys, pair, pyiqa_with_toys):
    model, folder = toys["fr"]
    ref, dist = pair
    metric = pyiqa_with_toys.create_metric("toy_adapter_fr", weights=str(folder), device="cpu")
    torch.testing.assert_close(metric(dist, ref), expected_distance(model, ref, dist), rtol=0, atol=1e-6)
    square = pyiqa_with_toys.create_metric("toy_adapter_fr_square", weights=str(folder), device="cpu")
    assert square.net.mode == "square"
    torch.testing.assert_close(square(dist, ref), expected_distance(model, ref, dist, True), rtol=0, atol=1e-6)
    nr = pyiqa_with_toys.create_metric("toy_adapter_nr", weights=str(toys["nr"][1]), channel="red", device="cpu")
    torch.testing.assert_close(nr(dist), toys["nr"][0].differentiable_score({"image": dist}, channel="red"))


def test_pyiqa_refuses_a_wrong_option_before_reading_weights(pyiqa_with_toys, tmp_path: Path):
    missing = str(tmp_path / "no-such-folder")
    with pytest.raises(UnknownOptionError, match="toy_adapter_fr has no option 'gate'.*of dss_sqa"):
        pyiqa_with_toys.create_metric("toy_adapter_fr", weights=missing, gate="soft", device="cpu")
    with pytest.raises(InvalidOptionError, match="unknown channel 'blue'"):
        pyiqa_with_toys.create_metric("toy_adapter_nr", weights=missing, channel="blue", device="cpu")
