"""The out-of-tree toy plug-ins (tests/plugin_toy) through the Ray engine, pyiqa, torchmetrics and
the losses, with nothing metric-specific in any of them (the command line: tests/test_plugins.py).

`toy_colour` is full reference and lower is better (range [0, inf)); `toy_brightness` no
reference, higher is better in [0, 1]. Their scores are exact arithmetic on the 32 x 32 test
images (tests/plugin_toy/testing.py), so each adapter's numbers are checked, not only run.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import cpu_trainer
from PIL import Image
from plugin_toy.testing import DELTAS, LEVELS, colour_expected, expected_scores, toy_env
from torch import nn

from semantic_iqa import create_metric
from semantic_iqa.preprocess import pil_to_tensor

lightning = pytest.importorskip("lightning")

pytest_plugins = ["plugin_toy.testing"]  # fixtures: toy_site, toys, toy_weights, toy_data


def tensors(paths: list) -> torch.Tensor:
    return torch.stack([pil_to_tensor(Image.open(path).convert("RGB")) for path in paths])


@pytest.fixture(scope="module")
def batches(toy_data) -> dict[str, torch.Tensor]:
    """The toys' test images as float batches [4, 3, 32, 32]: ref, dist (pairs p0..p3) and images (greys)."""
    return {
        "ref": tensors([toy_data["ref"] / f"{name}.png" for name in DELTAS]),
        "dist": tensors([toy_data["dist"] / f"{name}.png" for name in DELTAS]),
        "images": tensors([toy_data["images"] / f"{name}.png" for name in LEVELS]),
    }


@pytest.fixture(scope="module")
def expected(toys, toy_weights) -> dict[str, torch.Tensor]:
    """Each toy's expected scores of its four items, in order."""
    return {
        name: torch.tensor(
            list(expected_scores(name, create_metric(name, toy_weights[name], device="cpu")).values()),
            dtype=torch.float64,
        )
        for name in ("toy_colour", "toy_brightness")
    }


# -- Ray ----------------------------------------------------------------------------------------

RAY_JOBS = """
import json, sys
from semantic_iqa.cli import main
from semantic_iqa.ray import init_local_ray
init_local_ray(num_cpus=2)  # one instance for both jobs (each job joins the connected one)
sys.exit(max(main(job) for job in json.loads(sys.argv[1])))
"""


def test_the_ray_engine_scores_both_plugins(toy_site, toy_weights, toy_data, expected, tmp_path):
    pytest.importorskip("ray.data", reason="the Ray engine needs the [ray] extra")
    refs = shutil.copytree(toy_data["ref"], tmp_path / "ref")  # with one reference that has no pair
    shutil.copy(next(refs.glob("*.png")), refs / "lonely.png")
    jobs = {
        "toy_colour": [str(refs), str(toy_data["dist"])],
        "toy_brightness": [str(toy_data["images"])],
    }
    argv = [
        ["score-dir", "--metric", name, *folders, "--out", str(tmp_path / f"{name}.csv"), "--engine", "ray",
         "--weights", str(toy_weights[name]), "--device", "cpu", "--batch-size", "2",
         "--json", str(tmp_path / f"{name}.json")]
        for name, folders in jobs.items()
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", RAY_JOBS, json.dumps(argv)], capture_output=True, text=True, env=toy_env(toy_site),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "toy_colour.json").read_text())
    assert summary["only_in_ref"] == ["lonely.png"] and summary["only_in_dist"] == []  # the engine saw only pairs
    for name in jobs:
        with open(tmp_path / f"{name}.csv", newline="", encoding="utf-8") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda row: row["id"])
        assert [row["status"] for row in rows] == ["ok"] * 4
        scores = torch.tensor([float(row["score"]) for row in rows], dtype=torch.float64)
        torch.testing.assert_close(scores, expected[name], rtol=0, atol=1e-5)
        if name == "toy_brightness":
            assert [row["dark"] for row in rows] == ["True", "True", "False", "False"]
        else:
            assert float(rows[3]["gap_0"]) == pytest.approx(90 / 255 / 4, abs=1e-6)


# -- pyiqa --------------------------------------------------------------------------------------


def test_pyiqa_creates_both_plugins_with_their_direction_and_options(toys, toy_weights, batches, expected):
    pyiqa = pytest.importorskip("pyiqa")
    from semantic_iqa.integrations.pyiqa import register

    register()  # again: the plug-ins were registered after `import semantic_iqa` registered the built-ins
    configs = pyiqa.default_model_configs.DEFAULT_CONFIGS
    assert (configs["toy_colour"]["metric_mode"], configs["toy_colour"]["lower_better"]) == ("FR", True)
    assert "score_range" not in configs["toy_colour"]  # unbounded above
    assert (configs["toy_brightness"]["metric_mode"], configs["toy_brightness"]["score_range"]) == ("NR", "0, 1")

    colour = pyiqa.create_metric("toy_colour", weights=str(toy_weights["toy_colour"]), device="cpu", pooling="max")
    model = create_metric("toy_colour", toy_weights["toy_colour"], device="cpu")
    scores = colour(batches["dist"], batches["ref"])  # pyiqa: distorted first
    maxima = torch.tensor([colour_expected(model, name, "max")[0] for name in DELTAS], dtype=torch.float64)
    torch.testing.assert_close(scores.flatten().double(), maxima, rtol=0, atol=1e-5)
    brightness = pyiqa.create_metric("toy_brightness", weights=str(toy_weights["toy_brightness"]), device="cpu")
    scores = brightness(batches["images"]).flatten().double()
    torch.testing.assert_close(scores, expected["toy_brightness"], rtol=0, atol=1e-5)


# -- torchmetrics -------------------------------------------------------------------------------


def test_torchmetrics_means_and_directions_of_both_plugins(toys, toy_weights, batches, expected):
    from semantic_iqa.integrations.torchmetrics import FullReferenceQualityMetric, NoReferenceQualityMetric

    colour = FullReferenceQualityMetric("toy_colour", weights=toy_weights["toy_colour"])
    colour.update(batches["dist"][:3], batches["ref"][:3])  # distorted first, as torchmetrics' (preds, target)
    colour.update(batches["dist"][3:], batches["ref"][3:])
    assert colour.higher_is_better is False and colour.plot_lower_bound == 0.0 and colour.plot_upper_bound is None
    assert float(colour.compute()) == pytest.approx(float(expected["toy_colour"].mean()), abs=1e-5)

    brightness = NoReferenceQualityMetric("toy_brightness", weights=toy_weights["toy_brightness"])
    brightness.update(batches["images"][:1])
    brightness.update(batches["images"][1:])
    assert brightness.higher_is_better is True and (brightness.plot_lower_bound, brightness.plot_upper_bound) == (
        0.0,
        1.0,
    )
    assert float(brightness.compute()) == pytest.approx(float(expected["toy_brightness"].mean()), abs=1e-5)


# -- the losses, in a LightningModule trained by lightning.Trainer -----------------------------------------------


class Restorer(lightning.LightningModule):
    """A user's training client as Lightning users write one: a network, the metric's loss as a submodule."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.net = nn.Conv2d(3, 3, 1)
        with torch.no_grad():  # starts darker than the identity: every output pixel has room to improve
            self.net.weight.copy_(0.7 * torch.eye(3).view(3, 3, 1, 1))
            self.net.bias.zero_()
        self.loss = loss
        self.seen: list[float] = []  # the loss of each step, before its update

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_index: int) -> torch.Tensor:
        inputs, *targets = batch
        loss = self.loss(self.net(inputs).clamp(0, 1), *targets)
        self.seen.append(float(loss.detach()))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)  # everything the client owns, as users write it


def train_steps(client: Restorer, inputs: torch.Tensor, *targets: torch.Tensor, steps: int = 5) -> list[float]:
    """`steps` steps of `lightning.Trainer.fit` on the same batch; the losses before each step."""
    data = torch.utils.data.DataLoader([(inputs, *targets)] * steps, batch_size=None)
    trainer = cpu_trainer(steps)
    trainer.fit(client, data)
    assert client.training, "Lightning trains the client in train mode"
    return client.seen


def check_frozen(client: Restorer, before: dict[str, torch.Tensor]) -> None:
    held = client.loss.model
    assert not held.training, "the client's .train() must not reach the metric"
    assert all(not any(p is q for q in held.parameters()) for p in client.parameters())
    for key, value in held.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed: the client's optimizer reached the metric"


def test_the_loss_of_a_lower_is_better_full_reference_plugin_trains_a_client(toys, toy_weights, batches, expected):
    from semantic_iqa.integrations.loss import QualityLoss

    loss = QualityLoss("toy_colour", weights=toy_weights["toy_colour"], reduction="none")
    values = loss(batches["dist"], batches["ref"])  # distorted first; lower is better from 0: the loss is the score
    torch.testing.assert_close(values.double(), expected["toy_colour"], rtol=0, atol=1e-5)
    client = Restorer(QualityLoss("toy_colour", weights=toy_weights["toy_colour"]))
    before = {key: value.clone() for key, value in client.loss.model.state_dict().items()}
    losses = train_steps(client, batches["dist"], batches["ref"])
    assert losses[-1] < losses[0], losses
    check_frozen(client, before)


def test_the_loss_of_a_bounded_no_reference_plugin_trains_a_client(toys, toy_weights, batches, expected):
    from semantic_iqa.integrations.loss import NoReferenceQualityLoss

    loss = NoReferenceQualityLoss("toy_brightness", weights=toy_weights["toy_brightness"], reduction="none")
    values = loss(batches["images"])  # higher is better in [0, 1]: the loss is 1 - score
    torch.testing.assert_close(values.double(), 1 - expected["toy_brightness"], rtol=0, atol=1e-5)
    client = Restorer(NoReferenceQualityLoss("toy_brightness", weights=toy_weights["toy_brightness"]))
    before = {key: value.clone() for key, value in client.loss.model.state_dict().items()}
    losses = train_steps(client, batches["images"])
    assert losses[-1] < losses[0], losses
    check_frozen(client, before)
