"""The torchmetrics Metrics (DSS-SQA, and no-reference MST-CLIPIQA): mean score, correlations,
no weights in checkpoints, DDP sync on CPU."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import stats

import semantic_iqa
from semantic_iqa.errors import InvalidInputError, InvalidOptionError
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa

pytest.importorskip("torchmetrics")
from semantic_iqa.integrations.torchmetrics import DSSSQAMetric, NoReferenceQualityMetric  # noqa: E402

PROMPTS = ["a red car", "a cat on a sofa", "mountains at dawn", "a bowl of fruit"] * 2


@pytest.fixture(scope="module")
def mst_a_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random MST-CLIPIQA variant A (quality in [1, 5]) weights folder."""
    return build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "a")


@pytest.fixture(scope="module")
def mst_b_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random MST-CLIPIQA variant B (image + prompt, unbounded) weights folder."""
    return build_random_mst_clipiqa("B", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "b")


def dataset(n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(n, 3, 40, 40, generator=generator)
    dist_ = (ref * torch.linspace(0.3, 1.0, n).view(n, 1, 1, 1)).clamp(0, 1)
    labels = torch.linspace(0, 5, n)
    return ref, dist_, labels


def nr_dataset(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of several brightnesses (so scores differ) and labels that are not the scores' order."""
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(n, 3, 36, 52, generator=generator) * torch.linspace(0.2, 1.0, n).view(n, 1, 1, 1)).clamp(0, 1)
    labels = torch.tensor([3.0, 1.0, 4.0, 1.5, 5.0, 2.0, 2.5, 4.5])[:n]
    return images, labels


def test_mean_score_and_correlations(tiny_dir):
    ref, dist_, labels = dataset()
    metric = DSSSQAMetric(tiny_dir, correlation=True)
    metric.update(dist_[:5], ref[:5], labels[:5])
    metric.update(dist_[5:], ref[5:], labels[5:])
    result = metric.compute()
    scores = semantic_iqa.score(ref, dist_, weights=tiny_dir, device="cpu")
    torch.testing.assert_close(result["score"], scores.mean(), rtol=0, atol=1e-5)
    assert result["srocc"].item() == pytest.approx(stats.spearmanr(scores, labels).statistic, abs=1e-5)
    assert result["plcc"].item() == pytest.approx(stats.pearsonr(scores, labels).statistic, abs=1e-4)
    assert DSSSQAMetric.higher_is_better and DSSSQAMetric.is_differentiable


def test_references_are_cached_across_epochs_and_weights_stay_out_of_state_dict(tiny_dir):
    ref, dist_, _ = dataset(4)
    metric = DSSSQAMetric(tiny_dir)
    for _ in range(3):  # three "epochs" over the same validation references
        metric.update(dist_, ref)
    assert metric.reference_cache.misses == 4 and metric.reference_cache.hits == 8
    holder = torch.nn.Module()
    holder.metric = metric
    assert sum(v.numel() for v in holder.state_dict().values()) == 0


def test_labels_are_required_with_correlation(tiny_dir):
    ref, dist_, _ = dataset(2)
    with pytest.raises(InvalidInputError, match="one label per pair"):
        DSSSQAMetric(tiny_dir, correlation=True).update(dist_, ref)


def test_no_reference_mean_score_and_correlations(mst_a_dir):
    images, labels = nr_dataset()
    metric = NoReferenceQualityMetric("mst_clipiqa", mst_a_dir, correlation=True)
    metric.update(images[:3], labels[:3])
    metric.update(images[3:], labels[3:])
    result = metric.compute()
    with torch.no_grad():
        scores = semantic_iqa.create_metric("mst_clipiqa", mst_a_dir, device="cpu")(images).score
    assert float(scores.max() - scores.min()) > 0.3, "scores must differ for the correlations to mean anything"
    torch.testing.assert_close(result["score"], scores.mean(), rtol=0, atol=1e-5)
    assert result["srocc"].item() == pytest.approx(stats.spearmanr(scores, labels).statistic, abs=1e-5)
    assert result["plcc"].item() == pytest.approx(stats.pearsonr(scores, labels).statistic, abs=1e-4)
    assert abs(result["srocc"].item()) < 0.99, "labels in another order than the scores: not trivially 1"
    # Which way is better and the plot bounds come from the registry entry.
    assert metric.higher_is_better is True and metric.is_differentiable
    assert (metric.plot_lower_bound, metric.plot_upper_bound) == (1.0, 5.0)


def test_prompt_variant_takes_prompts_and_has_no_bounds(mst_b_dir):
    images, _ = nr_dataset()
    metric = NoReferenceQualityMetric("mst_clipiqa_prompt", mst_b_dir)
    metric.update(images[:5], prompts=PROMPTS[:5])
    metric.update(images[5:], prompts=PROMPTS[5:])
    with torch.no_grad():
        scores = semantic_iqa.create_metric("mst_clipiqa_prompt", mst_b_dir, device="cpu")(images, PROMPTS).score
    assert float(scores.max() - scores.min()) > 0.3
    torch.testing.assert_close(metric.compute(), scores.mean(), rtol=0, atol=1e-5)
    assert metric.higher_is_better is True
    assert metric.plot_lower_bound is None and metric.plot_upper_bound is None
    with pytest.raises(InvalidInputError, match="needs the generation prompt"):
        metric.update(images[:2])


def test_no_reference_refuses_what_does_not_fit(mst_a_dir, tiny_dir):
    images, _ = nr_dataset(2)
    metric = NoReferenceQualityMetric("mst_clipiqa", mst_a_dir, correlation=True)
    with pytest.raises(InvalidInputError, match="takes no prompts"):
        metric.update(images, prompts=["a", "b"])
    with pytest.raises(InvalidInputError, match="one label per image"):
        metric.update(images)
    with pytest.raises(InvalidOptionError, match="full-reference"):
        NoReferenceQualityMetric("dss_sqa", tiny_dir)
    # A variant-A model under the variant-B name would be read on the wrong scale.
    with pytest.raises(InvalidOptionError, match="variant='A'"):
        NoReferenceQualityMetric("mst_clipiqa_prompt", model=metric.model)
    with pytest.raises(InvalidOptionError, match="not both"):
        NoReferenceQualityMetric("mst_clipiqa", mst_a_dir, model=metric.model)


def test_no_reference_weights_stay_out_of_state_dict_and_in_eval_mode(mst_a_dir):
    images, _ = nr_dataset(2)
    metric = NoReferenceQualityMetric("mst_clipiqa", mst_a_dir)
    holder = torch.nn.Module()
    holder.metric = metric
    holder.train()
    assert not metric.model.training
    assert sum(v.numel() for v in holder.state_dict().values()) == 0
    metric.update(images)
    expected = metric.compute()
    metric.reset()
    # torchmetrics' convention: a dtype cast of the owner (`.double()`) leaves metrics alone;
    # only set_dtype() casts states. The held model keeps the precision it was loaded in.
    holder.double()
    assert next(metric.model.parameters()).dtype == torch.float32
    metric.update(images.double())
    torch.testing.assert_close(metric.compute(), expected, rtol=0, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, weights: dict[str, str], out: str) -> None:
    """One DDP rank: each metric of `weights` ({metric name: folder}) updated on this rank's shard, then synced."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        shard = slice(rank, None, world)  # a DistributedSampler-like split
        results = {}
        for metric_name, folder in weights.items():
            if metric_name == "dss_sqa":
                ref, dist_, labels = dataset()
                metric = DSSSQAMetric(folder, correlation=True)
                metric.update(dist_[shard], ref[shard], labels[shard])
            else:
                images, labels = nr_dataset()
                metric = NoReferenceQualityMetric(metric_name, folder, correlation=True)
                metric.update(images[shard], labels[shard])
            results[metric_name] = {k: v.clone() for k, v in metric.compute().items()}
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tiny_dir: Path, mst_a_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both metrics synced over two CPU processes, in ONE spawn (starting the two processes is most of the cost)."""
    out = tmp_path_factory.mktemp("ddp") / "ddp.pt"
    weights = {"dss_sqa": str(tiny_dir), "mst_clipiqa": str(mst_a_dir)}
    mp.spawn(_ddp_worker, args=(2, _free_port(), weights, str(out)), nprocs=2, join=True)
    return torch.load(out)


def test_ddp_two_processes_equal_one_process(tiny_dir, ddp_results):
    ref, dist_, labels = dataset()
    single = DSSSQAMetric(tiny_dir, correlation=True)
    single.update(dist_, ref, labels)
    expected = single.compute()
    for key in ("score", "srocc", "plcc"):
        assert ddp_results["dss_sqa"][key].item() == pytest.approx(expected[key].item(), abs=1e-5), key


def test_no_reference_ddp_two_processes_equal_one_process(mst_a_dir, ddp_results):
    images, labels = nr_dataset()
    single = NoReferenceQualityMetric("mst_clipiqa", mst_a_dir, correlation=True)
    single.update(images, labels)
    expected = single.compute()
    for key in ("score", "srocc", "plcc"):
        assert ddp_results["mst_clipiqa"][key].item() == pytest.approx(expected[key].item(), abs=1e-5), key


@pytest.mark.parametrize("correlation", [False, True])
def test_compute_before_any_update_is_nan_with_a_warning(tiny_dir, mst_a_dir, correlation):
    """0 would read as a real (worst) score; nothing seen yet is no score at all."""
    for metric in (DSSSQAMetric(tiny_dir, correlation=correlation), NoReferenceQualityMetric("mst_clipiqa", mst_a_dir)):
        with pytest.warns(UserWarning, match="before the ``update``"):
            result = metric.compute()
        values = result.values() if isinstance(result, dict) else [result]
        assert all(torch.isnan(value) for value in values)


def test_plot_uses_torchmetrics_own_plotting(tiny_dir, mst_a_dir, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ref, dist_, _ = dataset(4)
    fr = DSSSQAMetric(tiny_dir)
    values = []
    for index in range(2):
        fr.update(dist_[index * 2 : index * 2 + 2], ref[index * 2 : index * 2 + 2])
        values.append(fr.compute())
    figure, axis = fr.plot(values)
    low, high = axis.get_ylim()  # torchmetrics pads the bounds by a tenth of the range
    assert (low, high) == pytest.approx((-0.5, 5.5)), "the y axis spans DSS-SQA's score range, not the data's"
    figure.savefig(tmp_path / "fr.png")
    nr = NoReferenceQualityMetric("mst_clipiqa", mst_a_dir)
    nr.update(nr_dataset(4)[0])
    figure, axis = nr.plot()
    assert axis.get_ylim() == pytest.approx((0.6, 5.4))
    figure.savefig(tmp_path / "nr.png")
    assert (tmp_path / "fr.png").stat().st_size > 1000 and (tmp_path / "nr.png").stat().st_size > 1000


def test_set_dtype_casts_the_states_not_the_metric(tiny_dir):
    ref, dist_, labels = dataset(4)
    single = DSSSQAMetric(tiny_dir, correlation=True)
    single.update(dist_, ref, labels)
    expected = single.compute()
    double = DSSSQAMetric(tiny_dir, correlation=True).set_dtype(torch.float64)
    double.update(dist_, ref, labels)
    result = double.compute()
    assert all(value.dtype == torch.float64 for value in result.values())
    assert {p.dtype for p in double.model.parameters()} == {torch.float32}, "the metric keeps its precision"
    for key, value in expected.items():
        torch.testing.assert_close(result[key].float(), value, rtol=0, atol=1e-6)
    assert expected["score"].dtype == torch.float32
