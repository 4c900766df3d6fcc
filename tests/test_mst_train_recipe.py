"""MST-CLIPIQA's training loop, pinned: the whole loop recomputed in float64 and compared with the trainer.

test_mst_train.py checks the loss and single Adam steps by hand; this replays every epoch as the reference
recipe describes it (shared/reference/mst-clipiqa.md, "Training recipe"): the random_split (seed 42), batches
of 8 shuffled, MSE + 1.0 * margin-0.1 ranking loss, Adam with L2 weight decay 1e-3, no scheduler, no
clipping, and the epoch with the best validation SRCC (scipy) kept, the first of equal ones. The data are
chosen so the best epoch is neither the first nor the last (checked as a precondition).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from semantic_iqa.metrics.mst_clipiqa.features import CachedFeatures
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa
from semantic_iqa.metrics.mst_clipiqa.train import FeatureScorer, Recipe, train_on_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the loop in float64, from the reference text ---------------------------------------------------------------
# A faster lr than the reference's (pinned in test_mst_train), so that the epochs differ.
MST_IMAGES, MST_EPOCHS, MST_LR = 40, 6, 1e-3


def mst_replay(model, features, mos: np.ndarray) -> dict:
    """Split by random_split(seed 42), Adam with L2 weight decay, no scheduler, no clipping, MSE + ranking,
    batch 8 shuffled, the best validation SRCC kept; float64, written from the reference text."""
    permutation = torch.randperm(MST_IMAGES, generator=torch.Generator().manual_seed(42))
    train, validation = permutation[: int(0.8 * MST_IMAGES)], permutation[int(0.8 * MST_IMAGES) :]
    torch.manual_seed(42)  # the package seeds the fresh layers with the recipe's seed
    p = {name: v.detach().double().clone().requires_grad_() for name, v in FeatureScorer(model).named_parameters()}
    text = model.head.text_features.double()
    coarse, fine, y = features.coarse.double(), features.fine.double(), torch.as_tensor(mos)

    def score(rows):
        joint = torch.cat([coarse[rows], fine[rows]], -1)
        gate = torch.sigmoid(
            F.relu(joint @ p["fusion.W_h.weight"].T + p["fusion.W_h.bias"]) @ p["fusion.W_g.weight"].T
            + p["fusion.W_g.bias"]
        )
        z = gate * (coarse[rows] @ p["fusion.W_c.weight"].T + p["fusion.W_c.bias"])
        z = z + (1 - gate) * (fine[rows] @ p["fusion.W_f.weight"].T + p["fusion.W_f.bias"])
        logits = p["head.temperature"] * (z / z.norm(dim=-1, keepdim=True)) @ text.T
        return logits.softmax(-1) @ torch.arange(1.0, 6.0, dtype=torch.float64)

    def loss(q, target):
        sign = torch.sign(target[:, None] - target[None, :])
        hinge = F.relu(-sign * (q[:, None] - q[None, :]) + 0.1)[sign != 0]
        return ((q - target) ** 2).mean() + (hinge.mean() if len(hinge) else 0.0)

    moments = {name: (torch.zeros_like(v), torch.zeros_like(v)) for name, v in p.items()}
    shuffler = torch.utils.data.DataLoader(
        train.tolist(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(42)
    )
    step, out = 0, {"history": [], "states": []}
    for _ in range(MST_EPOCHS):
        losses = []
        for rows in shuffler:
            value = loss(score(rows), y[rows])
            grads = torch.autograd.grad(value, list(p.values()))
            step += 1
            with torch.no_grad():
                for (name, param), grad in zip(p.items(), grads, strict=True):
                    grad = grad + 1e-3 * param  # Adam's L2 weight decay, inside the moments
                    first, second = moments[name]
                    first.mul_(0.9).add_(0.1 * grad)
                    second.mul_(0.999).add_(0.001 * grad * grad)
                    param.sub_(MST_LR * (first / (1 - 0.9**step)) / ((second / (1 - 0.999**step)).sqrt() + 1e-8))
            losses.append(float(value.detach()))
        with torch.no_grad():
            predicted = score(validation).numpy()
        labels = mos[validation.numpy()]
        out["history"].append(
            (
                float(np.mean(losses)),
                stats.spearmanr(predicted, labels).statistic,
                stats.pearsonr(predicted, labels).statistic,
            )
        )
        out["states"].append({name: v.detach().clone() for name, v in p.items()})
    out["best"] = int(np.nanargmax([h[1] for h in out["history"]]))
    return out


def test_mst_trainer_matches_the_float64_replay_of_its_loop():
    model = build_random_mst_clipiqa("A", "tiny", seed=0)
    generator = torch.Generator().manual_seed(2)  # validation SRCC 0.10, 0.12, 0.24, 0.24, 0.12, 0.07
    features = CachedFeatures(
        torch.randn(MST_IMAGES, 64, generator=generator), torch.randn(MST_IMAGES, 64, generator=generator)
    )
    signal = features.coarse[:, 0] + features.fine[:, 1] + 0.7 * torch.randn(MST_IMAGES, generator=generator)
    mos = (2.5 + 2 * torch.tanh(signal)).double().numpy()
    result = train_on_features(model, features, mos, Recipe(epochs=MST_EPOCHS, lr=MST_LR), progress=False)
    replay = mst_replay(model, features, mos)
    history = [(h["train_loss"], h["srocc"], h["plcc"]) for h in result.history]
    np.testing.assert_allclose(history, replay["history"], rtol=0, atol=1e-5)
    assert 0 < replay["best"] < MST_EPOCHS - 1, "the data must have a best epoch neither first nor last"
    assert result.best_epoch == replay["best"] + 1, "the first of equal best epochs is kept"
    for name, value in replay["states"][replay["best"]].items():
        torch.testing.assert_close(result.head_state[name].double(), value, rtol=0, atol=1e-5, msg=name)
    last = replay["states"][-1]["fusion.W_c.weight"]
    assert float((last - replay["states"][replay["best"]]["fusion.W_c.weight"]).abs().max()) > 1e-3


# -- the recipe's settings reach its functions ----------------------------------------------------------------
def test_the_split_uses_the_recipes_fraction_and_names_it_when_refusing():
    from dataclasses import replace

    from semantic_iqa.errors import DatasetError
    from semantic_iqa.metrics.mst_clipiqa.recipe import checked_split, reference_split

    train, validation = checked_split(10, replace(Recipe(), train_fraction=0.5))
    assert (len(train), len(validation)) == (5, 5)
    assert train.dtype == validation.dtype == np.int64  # on every platform (numpy < 2 on Windows: int32)
    assert [t.dtype for t in reference_split(7)] == [np.int64, np.int64]
    # One image to train on is enough; two to validate are needed.
    assert [len(part) for part in checked_split(3, replace(Recipe(), train_fraction=0.34))] == [1, 2]
    with pytest.raises(DatasetError) as error:
        checked_split(2, Recipe())
    assert str(error.value) == (
        "2 labelled images are too few: the 0.8/0.2 split gives 1 to train and 1 to validate (at least 1 and 2 "
        "are needed)"
    )


def test_the_loss_uses_the_recipes_margin_and_ranking_weight():
    from dataclasses import replace

    from semantic_iqa.metrics.mst_clipiqa.recipe import recipe_loss

    q, mos = torch.tensor([0.2, 0.25, 0.9]), torch.tensor([1.0, 2.0, 2.0])
    # Ordered pairs of different MOS, both in the right order: (0,1) and (1,0) by 0.05 -> relu(-0.05 + m),
    # (0,2) and (2,0) by 0.7 -> relu(-0.7 + m). Margin 0.5: (0.45 * 2 + 0 * 2) / 4; margin 0.1 would give 0.025.
    recipe = replace(Recipe(), margin=0.5, ranking_weight=2.0)
    mse = float(((q - mos) ** 2).mean())
    assert float(recipe_loss(q, mos, recipe)) == pytest.approx(mse + 2.0 * (0.45 * 2) / 4, abs=1e-6)
