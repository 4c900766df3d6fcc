"""The torchmetrics Metric: mean score, correlations, no weights in checkpoints, DDP sync on CPU."""

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
from semantic_iqa.errors import InvalidInputError

pytest.importorskip("torchmetrics")
from semantic_iqa.integrations.torchmetrics import DSSSQAMetric  # noqa: E402


def dataset(n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(n, 3, 40, 40, generator=generator)
    dist_ = (ref * torch.linspace(0.3, 1.0, n).view(n, 1, 1, 1)).clamp(0, 1)
    labels = torch.linspace(0, 5, n)
    return ref, dist_, labels


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, weights: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ref, dist_, labels = dataset()
        metric = DSSSQAMetric(weights, correlation=True)
        shard = slice(rank, None, world)  # a DistributedSampler-like split
        metric.update(dist_[shard], ref[shard], labels[shard])
        result = metric.compute()
        if rank == 0:
            torch.save({k: v.clone() for k, v in result.items()}, out)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process(tiny_dir, tmp_path: Path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tiny_dir), str(out)), nprocs=2, join=True)
    synced = torch.load(out)
    ref, dist_, labels = dataset()
    single = DSSSQAMetric(tiny_dir, correlation=True)
    single.update(dist_, ref, labels)
    expected = single.compute()
    for key in ("score", "srocc", "plcc"):
        assert synced[key].item() == pytest.approx(expected[key].item(), abs=1e-5), key
