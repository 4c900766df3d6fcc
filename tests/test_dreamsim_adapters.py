"""DreamSim in the tools its users already have, with lower = more similar in each: pyiqa (`create_metric`,
its own command line, `as_loss=True`), torchmetrics, and the training loss (the distance itself),
each held frozen inside a real LightningModule that `lightning.Trainer` trains.

The tiny ensemble has random weights: every number here checks plumbing, not accuracy. The
command line and the jobs: tests/test_dreamsim_layers.py; the model: tests/test_dreamsim.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cpu_trainer, offline_env
from dreamsim_testing import PAIRS, as_tensor
from PIL import Image
from torch import nn

import semantic_iqa  # noqa: F401  (registers the metrics with pyiqa)
from semantic_iqa.integrations.loss import QualityLoss
from semantic_iqa.integrations.pyiqa import FR_ARCH_NAME
from semantic_iqa.integrations.torchmetrics import FullReferenceQualityMetric

pyiqa = pytest.importorskip("pyiqa")
lightning = pytest.importorskip("lightning")

pytest_plugins = ["dreamsim_testing"]  # fixtures: dreamsim_dir, dreamsim, pair_dirs, expected, pair_batches

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def distances(dreamsim, pair_batches) -> torch.Tensor:
    """The tiny model's distances of the float pairs (the differentiable path the adapters use)."""
    with torch.no_grad():
        return dreamsim(*pair_batches)


# -- pyiqa ----------------------------------------------------------------------------------------


def test_pyiqa_has_dreamsim_as_a_lower_is_better_full_reference_metric(dreamsim_dir, pair_batches, distances):
    config = pyiqa.default_model_configs.DEFAULT_CONFIGS["dreamsim"]
    assert config == {
        "metric_opts": {"type": FR_ARCH_NAME, "metric": "dreamsim"},
        "metric_mode": "FR",
        "lower_better": True,
        "score_range": "0, 2",
    }
    assert "dreamsim" in pyiqa.list_models(metric_mode="FR")
    metric = pyiqa.create_metric("dreamsim", weights=str(dreamsim_dir), device="cpu")
    assert (metric.metric_mode, metric.lower_better, metric.score_range) == ("FR", True, "0, 2")
    ref, dist = pair_batches
    torch.testing.assert_close(metric(dist, ref).flatten(), distances, rtol=0, atol=1e-6)  # pyiqa: distorted first
    assert float(distances.max() - distances.min()) > 0.9

    as_loss = pyiqa.create_metric("dreamsim", as_loss=True, weights=str(dreamsim_dir), device="cpu")
    image, reference = dist.clone().requires_grad_(True), ref.clone().requires_grad_(True)
    loss = as_loss(image, reference)  # lower is better already: pyiqa's loss is the mean distance
    torch.testing.assert_close(loss, distances.mean(), rtol=0, atol=1e-6)
    loss.backward()
    assert image.grad.abs().sum() > 0 and reference.grad is None, "gradients reach the scored images only"


def test_pyiqas_own_command_line_scores_dreamsim_folders(dreamsim_dir, pair_dirs, distances, tmp_path):
    """`pyiqa dreamsim -t DIST -r REF`, pyiqa's console script, finding our metric through the start-up
    hook: the repository's real `semantic_iqa_autoload.pth`, read by `site` as in an installed
    package (here through `site.addsitedir`, as the editable install does not copy it)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import site\nsite.addsitedir({str(REPO)!r})\n")
    env = offline_env(tmp_path / "hub", PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    env["SEMANTIC_IQA_DREAMSIM_WEIGHTS"] = str(dreamsim_dir)
    pyiqa_script = Path(sys.executable).parent / "pyiqa"
    ref, dist = (str(folder) for folder in pair_dirs)
    done = subprocess.run(
        [str(pyiqa_script), "dreamsim", "-t", dist, "-r", ref, "--device", "cpu", "-v"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = {
        Path(target).stem: float(value)
        for target, value in re.findall(r"'(\S+) \| \S+': (?:np\.float64\()?([0-9.e-]+)", done.stdout)
    }
    assert list(printed) == list(PAIRS), done.stdout
    assert list(printed.values()) == pytest.approx(distances.tolist(), abs=1e-5)
    mean = float(re.search(r"'mean': (?:np\.float64\()?([0-9.e-]+)", done.stdout)[1])
    assert mean == pytest.approx(float(distances.mean()), abs=1e-5)


# -- torchmetrics ---------------------------------------------------------------------------------


def test_torchmetrics_mean_distance_direction_and_plot(dreamsim_dir, pair_batches, distances):
    ref, dist = pair_batches
    metric = FullReferenceQualityMetric("dreamsim", weights=dreamsim_dir)
    assert metric.higher_is_better is False and (metric.plot_lower_bound, metric.plot_upper_bound) == (0.0, 2.0)
    for _ in range(2):  # two "epochs" of the same validation pairs
        metric.update(dist[:2], ref[:2])  # distorted first, as torchmetrics' (preds, target)
        metric.update(dist[2:], ref[2:])
    assert float(metric.compute()) == pytest.approx(float(distances.mean()), abs=1e-6)
    assert (metric.reference_cache.misses, metric.reference_cache.hits) == (1, 9)  # one reference image, cached
    pytest.importorskip("matplotlib")
    _, axis = metric.plot()
    assert axis.get_ylim() == pytest.approx((-0.2, 2.2))  # the score range 0 to 2, with torchmetrics' margin


# -- the loss -------------------------------------------------------------------------------------


def test_the_loss_is_the_distance_with_gradients_in_the_distorted_images_only(dreamsim_dir, pair_batches, distances):
    loss = QualityLoss("dreamsim", weights=dreamsim_dir, reduction="none")
    ref, dist = pair_batches
    image, reference = dist.clone().requires_grad_(True), ref.clone().requires_grad_(True)
    values = loss(image, reference)
    torch.testing.assert_close(values, distances, rtol=0, atol=1e-6)  # lower is better from 0: the distance itself
    assert torch.equal(loss(ref, ref), torch.zeros(5))
    values.sum().backward()
    assert image.grad.abs().sum() > 0 and reference.grad is None, "gradients reach the scored images only"
    assert all(p.grad is None and not p.requires_grad for p in loss.model.parameters()), "the backbones are frozen"


class Restorer(lightning.LightningModule):
    """A user's restoration model with the metric as a submodule, as Lightning users write one."""

    def __init__(self, iqa: nn.Module, mode: str) -> None:
        super().__init__()
        self.net = nn.Conv2d(3, 3, 1)
        with torch.no_grad():  # starts darker than the identity: room to improve
            self.net.weight.copy_(0.7 * torch.eye(3).view(3, 3, 1, 1))
            self.net.bias.zero_()
        self.iqa, self.mode = iqa, mode
        self.seen: list[float] = []

    def training_step(self, batch, batch_index):
        ref = batch
        restored = self.net(ref).clamp(0, 1)
        if self.mode == "validation metric":  # updated during training; the user's own loss is L1
            self.iqa.update(restored.detach(), ref)
            loss = (restored - ref).abs().mean()
        else:
            loss = self.iqa(restored, ref)
        self.seen.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)  # everything the user's model owns


ADAPTERS = {
    "pyiqa as_loss": lambda w: pyiqa.create_metric("dreamsim", as_loss=True, weights=str(w), device="cpu"),
    "QualityLoss": lambda w: QualityLoss("dreamsim", weights=w),
    "validation metric": lambda w: FullReferenceQualityMetric("dreamsim", weights=w),
}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_users_trainer_leaves_the_metric_frozen_and_out_of_the_checkpoint(dreamsim_dir, pair_dirs, adapter, tmp_path):
    iqa = ADAPTERS[adapter](dreamsim_dir)
    model = iqa.net.model if hasattr(iqa, "net") else iqa.model  # pyiqa wraps our arch in `.net`
    before = {key: value.clone() for key, value in model.state_dict().items()}
    client = Restorer(iqa, adapter)
    assert not {id(p) for p in model.parameters()} & {id(p) for p in client.parameters()}
    photo = as_tensor(Image.open(pair_dirs[0] / "p0.png"))
    data = torch.utils.data.DataLoader([torch.stack([photo, photo.flip(-1)])] * 5, batch_size=None)
    trainer = cpu_trainer(5, tmp_path)
    trainer.fit(client, data)
    assert client.training and client.seen[-1] < client.seen[0], client.seen  # the user's model trained
    assert not any(module.training for module in model.modules()), "the client's .train() reached the metric"
    changed = [key for key, value in model.state_dict().items() if not torch.equal(value, before[key])]
    assert not changed, f"the client's optimizer changed the metric's {changed[:3]}"
    trainer.save_checkpoint(tmp_path / "client.ckpt")
    saved = torch.load(tmp_path / "client.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    others = [key for key in saved if not key.startswith("net.")]
    assert others in ([], ["iqa.dummy_param"]), others[:5]  # no tensor of the metric (pyiqa's wrapper has one own)
