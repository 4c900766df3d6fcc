"""A metric inside a user's model stays frozen: the way restoration users hit it, with Lightning.

Each adapter (pyiqa FR and NR with `as_loss=True`, the two torchmetrics metrics, the two
losses) is a submodule of a LightningModule whose `parameters()` go to Adam and which
Lightning puts in `.train()` for every step. Afterwards the metric's tensors are
bit-identical, a fixed pair scores the same, the metric is still in eval mode, and the
user's checkpoint (`state_dict`) holds none of the metric's tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import cpu_trainer
from torch import nn

import semantic_iqa  # noqa: F401  (registers the metrics with pyiqa)
from semantic_iqa.integrations.loss import DSSSQALoss, NoReferenceQualityLoss
from semantic_iqa.integrations.torchmetrics import DSSSQAMetric, NoReferenceQualityMetric
from semantic_iqa.metrics.mst_clipiqa import build_random_mst_clipiqa

lightning = pytest.importorskip("lightning")
pyiqa = pytest.importorskip("pyiqa")


@pytest.fixture(scope="module")
def mst_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "tiny-a")


def fixed_batch(seed: int, size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ref = torch.rand(size, 3, 40, 56, generator=generator)
    dist = (0.7 * ref + 0.3 * torch.rand(size, 3, 40, 56, generator=generator)).clamp(0, 1)
    return ref, dist


class Restorer(lightning.LightningModule):
    """A user's restoration model with the metric as a submodule, trained by the metric's loss."""

    def __init__(self, iqa: nn.Module, loss_of: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 3, 3, padding=1))
        self.iqa = iqa
        self.loss_of = loss_of

    def training_step(self, batch, batch_index):
        ref, dist = batch
        restored = torch.sigmoid(self.net(dist))
        return self.loss_of(self.iqa, restored, ref)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)  # everything the user's model owns


def metric_model(iqa: nn.Module) -> nn.Module:
    """The metric an adapter scores with (pyiqa wraps our arch in `.net`)."""
    return iqa.net.model if hasattr(iqa, "net") else iqa.model


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def fr_loss(iqa, restored, ref):
    return iqa(restored, ref)


def nr_loss(iqa, restored, ref):
    return iqa(restored)


def update_then_l1(iqa, restored, ref):
    """A validation metric updated during training; the user's own loss is L1."""
    if isinstance(iqa, DSSSQAMetric):
        iqa.update(restored.detach(), ref)
    else:
        iqa.update(restored.detach())
    return (restored - ref).abs().mean()


ADAPTERS = {
    "pyiqa dss_sqa as_loss": (
        lambda d, m: pyiqa.create_metric("dss_sqa", as_loss=True, weights=d, device="cpu"),
        fr_loss,
    ),
    "pyiqa mst_clipiqa as_loss": (
        lambda d, m: pyiqa.create_metric("mst_clipiqa", as_loss=True, weights=m, device="cpu"),
        nr_loss,
    ),
    "DSSSQALoss": (lambda d, m: DSSSQALoss(d), fr_loss),
    "NoReferenceQualityLoss": (lambda d, m: NoReferenceQualityLoss("mst_clipiqa", m), nr_loss),
    "DSSSQAMetric": (lambda d, m: DSSSQAMetric(d), update_then_l1),
    "NoReferenceQualityMetric": (lambda d, m: NoReferenceQualityMetric("mst_clipiqa", m), update_then_l1),
}


def fixed_pair_score(model: nn.Module) -> torch.Tensor:
    ref, dist = fixed_batch(seed=99)
    with torch.no_grad():
        if "ref" in model.info.inputs:
            return model(ref, dist).score
        return model(dist).score


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_users_optimizer_and_train_mode_leave_the_metric_unchanged(adapter, tiny_dir, mst_dir):
    make, loss_of = ADAPTERS[adapter]
    iqa = make(tiny_dir, mst_dir)
    model = metric_model(iqa)
    before, score_before = snapshot(model), fixed_pair_score(model)
    assert any(p.requires_grad is False for p in model.parameters())

    user_model = Restorer(iqa, loss_of)
    own = {id(p) for p in model.parameters()}
    assert not own & {id(p) for p in user_model.parameters()}, "the metric's parameters reach the user's optimizer"
    net_before = snapshot(user_model.net)
    data = torch.utils.data.DataLoader([fixed_batch(seed) for seed in range(4)], batch_size=None)
    trainer = cpu_trainer(4)
    trainer.fit(user_model, data)

    assert user_model.training and user_model.net.training, "Lightning trained the user's model in train mode"
    assert any(not torch.equal(net_before[k], v) for k, v in user_model.net.state_dict().items()), "nothing trained"
    after = model.state_dict()
    changed = [name for name, tensor in before.items() if not torch.equal(tensor, after[name])]
    assert not changed, f"{adapter}: the user's training changed the metric's {changed[:5]}"
    assert not any(module.training for module in model.modules()), "the metric left eval mode"
    assert all(not p.requires_grad for p in model.parameters())
    assert torch.equal(fixed_pair_score(model), score_before)
    metric_keys = [key for key in user_model.state_dict() if key.startswith("iqa.")]
    assert not any("encoders" in key or "heads" in key or "head." in key for key in metric_keys), metric_keys[:5]


def test_batch_of_one_in_a_training_model_scores_like_eval(tiny_dir):
    """BatchNorm in train mode cannot take a batch of one; a frozen metric never is in train mode."""
    iqa = pyiqa.create_metric("dss_sqa", as_loss=True, weights=tiny_dir, device="cpu")
    ref, dist = fixed_batch(seed=3, size=1)
    expected = metric_model(iqa)(ref, dist).score
    parent = nn.ModuleDict({"iqa": iqa}).train()
    restored = dist.clone().requires_grad_(True)
    loss = parent["iqa"](restored, ref)
    loss.backward()
    assert torch.allclose(loss.detach(), expected.detach().mean(), atol=0, rtol=0)
    assert restored.grad is not None and restored.grad.abs().sum() > 0, "gradients still reach the images"
