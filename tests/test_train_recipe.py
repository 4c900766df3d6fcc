"""DSS-SQA's training recipe, pinned: every part of the reference recipe recomputed in float64 and compared.

DSS-SQA (shared/reference/dss-sqa.md, "Training recipe"): loss = CrossEntropy(logits, round(score)) +
MSE(expected score, score), weights 1 and 1; AdamW lr 2e-4, weight decay 0.01 (torch's betas and eps);
gradient-norm clipping at 1.0; cosine annealing over 10 epochs, stepped per epoch; batch 32, shuffled;
reference and distorted image flipped independently with p = 0.5; after each epoch the held-out fold is
scored in eval mode (gate on) and the epoch with the best Final = 0.6 SROCC + 0.4 PLCC is kept.
The replay below is written from that text, not from the trainer. Its data are built so that every part
changes the result: non-integer scores, flipped features unlike the plain ones, pairs the gate vetoes,
folds whose best epoch is not the last (each checked as a precondition).

MST-CLIPIQA's loop is replayed in test_mst_train_recipe.py; --cache on a second run in test_train_cache_reuse.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG
from semantic_iqa.metrics.dss_sqa.heads import FoldHeads
from semantic_iqa.metrics.dss_sqa.train import (
    Recipe,
    draw_flips,
    make_optimiser,
    recipe_loss,
    recipe_step,
    stratified_folds,
    train_folds,
)

# The reference recipe's constants, as the reference states them (not read from the package).
LR, WEIGHT_DECAY, BETAS, EPS, CLIP, EPOCHS, BATCH, SEED, FLIP = 2e-4, 0.01, (0.9, 0.999), 1e-8, 1.0, 10, 32, 3407, 0.5
CLASSES = torch.arange(6, dtype=torch.float64)
DS, DC, PAIRS = 6, 8, 80  # tiny feature widths; 80 pairs = 5 folds of 16, 64 to train = 2 batches per epoch
CONFIG = replace(REFERENCE_CONFIG, structure_dim=DS, semantic_dim=DC)
NAMES = ["linear1_weight", "linear1_bias", "norm_weight", "norm_bias"]
NAMES += ["linear2_weight", "linear2_bias", "linear3_weight", "linear3_bias"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def feature_set(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Cached features of PAIRS references (rows 0..P-1) and distorted images (P..2P-1), plain and
    flipped (unlike each other, so the flip draws matter), and non-integer scores in [0, 5]."""
    generator = torch.Generator().manual_seed(seed)
    structure = torch.randn(2 * PAIRS, 2, DS, generator=generator)
    semantic = torch.randn(2 * PAIRS, 2, DC, generator=generator)
    # Most distorted images keep their reference's content (CLIP cosine ~0.9, the gate lets them
    # through); every 7th is unrelated (cosine ~0, vetoed when the held-out fold is scored).
    related = torch.arange(PAIRS) % 7 != 0
    noise = 0.4 * torch.randn(PAIRS, 2, DC, generator=generator)
    semantic[PAIRS:][related] = semantic[:PAIRS][related] + noise[related]
    signal = structure[:PAIRS, 0, 0] - structure[PAIRS:, 0, 0] + 0.5 * semantic[:PAIRS, 0, 1]
    scores = 2.5 + 1.5 * torch.tanh(signal) + 0.8 * torch.randn(PAIRS, generator=generator)
    return structure, semantic, scores.clamp(0.05, 4.95).double().numpy()


# -- the recipe in float64, from the reference text ----------------------------------------------------
def fuse(s_r, s_d, c_r, c_d):
    cosine = (c_r * c_d).sum(-1) / (c_r.norm(dim=-1) * c_d.norm(dim=-1))
    product = c_r / c_r.norm(dim=-1, keepdim=True) * c_d / c_d.norm(dim=-1, keepdim=True)
    return torch.cat([s_r, s_d, (s_r - s_d).abs(), c_r, (c_r - c_d).abs(), product, cosine[:, None]], -1), cosine


def head_logits(p: dict, stats_: dict, fused: torch.Tensor, training: bool) -> torch.Tensor:
    """Linear -> BatchNorm1d (momentum 0.1, eps 1e-5) -> SiLU -> Dropout(0.5) -> Linear -> SiLU -> Dropout(0.2)
    -> Linear, BatchNorm on batch statistics (updating the running ones) in training, running ones in eval."""
    hidden = fused @ p["linear1_weight"].T + p["linear1_bias"]
    if training:
        mean, var = hidden.mean(0), hidden.var(0, unbiased=False)
        with torch.no_grad():
            stats_["mean"].mul_(0.9).add_(0.1 * mean)
            stats_["var"].mul_(0.9).add_(0.1 * hidden.var(0, unbiased=True))
    else:
        mean, var = stats_["mean"], stats_["var"]
    hidden = (hidden - mean) / torch.sqrt(var + 1e-5) * p["norm_weight"] + p["norm_bias"]
    hidden = F.dropout(F.silu(hidden), 0.5, training)  # torch's dropout: the same global-RNG draws
    hidden = F.dropout(F.silu(hidden @ p["linear2_weight"].T + p["linear2_bias"]), 0.2, training)
    return hidden @ p["linear3_weight"].T + p["linear3_bias"]


def hand_loss(logits: torch.Tensor, scores: torch.Tensor, mse: bool = True) -> torch.Tensor:
    log_p = logits - logits.logsumexp(-1, keepdim=True)
    cross_entropy = -log_p.gather(1, scores.round().long()[:, None]).mean()
    return cross_entropy + (((log_p.exp() @ CLASSES) - scores) ** 2).mean() * mse


def clipped(grads: list[torch.Tensor], max_norm: float | None) -> tuple[list[torch.Tensor], float]:
    """torch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1."""
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    scale = 1.0 if max_norm is None else min(1.0, max_norm / (norm + 1e-6))
    return [g * scale for g in grads], norm


def adamw_(params: list[torch.Tensor], grads, moments, step: int, lr: float) -> None:
    """Decoupled weight decay, then Adam with bias correction (Loshchilov & Hutter), in place."""
    with torch.no_grad():
        for param, grad, (first, second) in zip(params, grads, moments, strict=True):
            param.mul_(1 - lr * WEIGHT_DECAY)
            first.mul_(BETAS[0]).add_((1 - BETAS[0]) * grad)
            second.mul_(BETAS[1]).add_((1 - BETAS[1]) * grad * grad)
            m_hat, v_hat = first / (1 - BETAS[0] ** step), second / (1 - BETAS[1] ** step)
            param.sub_(lr * m_hat / (v_hat.sqrt() + EPS))


def cosine_lr(epoch: int) -> float:
    """CosineAnnealingLR(T_max = EPOCHS, eta_min = 0), stepped once per epoch (epoch counts from 0)."""
    return 0.5 * LR * (1 + math.cos(math.pi * epoch / EPOCHS))


def final(predicted: np.ndarray, labels: np.ndarray) -> float:
    value = 0.6 * stats.spearmanr(predicted, labels).statistic + 0.4 * stats.pearsonr(predicted, labels).statistic
    return -math.inf if math.isnan(value) else value


def replay_fold(structure, semantic, scores, train_pairs, held_out, *, wrong: str = "") -> dict:
    """One fold of the recipe, step by step in float64. `wrong` names a deliberate deviation (a control)."""
    torch.manual_seed(SEED)  # a fold starts as a fresh run: the head's init, then dropout, from SEED
    start = FoldHeads(1, CONFIG.fusion_dim, CONFIG.head)
    p = {name: getattr(start, name)[0].detach().double().clone().requires_grad_() for name in NAMES}
    norm = {"mean": torch.zeros(256, dtype=torch.float64), "var": torch.ones(256, dtype=torch.float64)}
    moments = [(torch.zeros_like(v), torch.zeros_like(v)) for v in p.values()]
    generator = torch.Generator().manual_seed(SEED)
    s, c, y = structure.double(), semantic.double(), torch.as_tensor(scores)
    step, out = 0, {"history": [], "states": [], "predictions": [], "lr": [], "norms": []}
    for epoch in range(EPOCHS):
        lr = LR if wrong == "constant lr" else cosine_lr(epoch)
        order = torch.as_tensor(train_pairs)[torch.randperm(len(train_pairs), generator=generator)]
        for batch in order.split(BATCH):
            draws = torch.rand(2, len(batch), generator=generator) < FLIP
            ref_flip, dist_flip = draws.long()
            if wrong == "same flips":
                dist_flip = ref_flip
            fused, _ = fuse(
                s[batch, ref_flip], s[batch + PAIRS, dist_flip], c[batch, ref_flip], c[batch + PAIRS, dist_flip]
            )
            loss = hand_loss(head_logits(p, norm, fused, True), y[batch], mse=wrong != "no mse")
            grads, raw = clipped(
                list(torch.autograd.grad(loss, list(p.values()))), None if wrong == "no clip" else CLIP
            )
            step += 1
            adamw_(list(p.values()), grads, moments, step, lr)
            out["norms"].append(raw)
        out["lr"].append(lr)
        held = torch.as_tensor(held_out)
        fused, cosine = fuse(s[held, 0], s[held + PAIRS, 0], c[held, 0], c[held + PAIRS, 0])
        with torch.no_grad():
            logits = head_logits(p, norm, fused, False)
        vetoed = torch.tensor([12.0, -12, -12, -12, -12, -12], dtype=torch.float64)
        logits = torch.where((cosine < 0.4)[:, None], vetoed, logits)  # the hard gate, eval mode
        predictions = (logits.softmax(-1) @ CLASSES).numpy()
        out["history"].append(final(predictions, scores[held_out]))
        out["predictions"].append(predictions)
        out["states"].append({name: v.detach().clone() for name, v in p.items()} | {"running": norm["mean"].clone()})
    out["best"] = int(np.argmax(out["history"])) if wrong != "keep last" else EPOCHS - 1  # argmax: first of ties
    return out


@pytest.fixture(scope="module")
def dss():
    structure, semantic, scores = feature_set()
    trained = train_folds(
        CONFIG, structure, semantic, np.arange(PAIRS), np.arange(PAIRS, 2 * PAIRS), scores, progress=False
    )
    folds = stratified_folds(scores, 5, SEED)
    replays = [replay_fold(structure, semantic, scores, np.setdiff1d(np.arange(PAIRS), f), f) for f in folds]
    return {"data": (structure, semantic, scores), "folds": folds, "trained": trained, "replays": replays}


# -- DSS-SQA: the trainer's pieces ---------------------------------------------------------------------
def test_the_loss_of_a_batch_is_cross_entropy_of_the_rounded_score_plus_mse_of_the_expectation():
    generator = torch.Generator().manual_seed(1)
    logits = 2 * torch.randn(9, 6, generator=generator, dtype=torch.float64)
    scores = torch.tensor([0.2, 0.7, 1.4, 1.6, 2.45, 3.3, 3.8, 4.6, 4.9], dtype=torch.float64)  # round != floor
    log_p = [[logits[i, k] - logits[i].exp().sum().log() for k in range(6)] for i in range(9)]
    cross_entropy = -sum(log_p[i][round(float(scores[i]))] for i in range(9)) / 9
    expectation = [sum(k * math.exp(log_p[i][k]) for k in range(6)) for i in range(9)]
    mse = sum((expectation[i] - float(scores[i])) ** 2 for i in range(9)) / 9
    assert cross_entropy > 0.5 and mse > 0.5, "each term is large enough to be missed"
    assert float(recipe_loss(logits, scores)) == pytest.approx(float(cross_entropy + mse), abs=1e-12)


def test_two_steps_are_adamw_on_gradients_clipped_to_norm_1_by_hand():
    torch.manual_seed(0)
    head = FoldHeads(1, CONFIG.fusion_dim, CONFIG.head).double()
    p = {name: getattr(head, name)[0].detach().clone().requires_grad_() for name in NAMES}
    norm = {"mean": torch.zeros(256, dtype=torch.float64), "var": torch.ones(256, dtype=torch.float64)}
    moments = [(torch.zeros_like(v), torch.zeros_like(v)) for v in p.values()]
    optimiser, _ = make_optimiser(head, Recipe())
    generator = torch.Generator().manual_seed(2)
    for step in (1, 2):
        fused = torch.randn(BATCH, CONFIG.fusion_dim, generator=generator, dtype=torch.float64)
        scores = 5 * torch.rand(BATCH, generator=generator, dtype=torch.float64)
        torch.manual_seed(10 + step)  # the same dropout masks for the trainer's step and the hand one
        loss = recipe_step(head, optimiser, fused, scores, Recipe())
        torch.manual_seed(10 + step)
        expected = hand_loss(head_logits(p, norm, fused, True), scores)
        grads, raw = clipped(list(torch.autograd.grad(expected, list(p.values()))), CLIP)
        adamw_(list(p.values()), grads, moments, step, LR)
        assert float(loss) == pytest.approx(float(expected.detach()), abs=1e-12)
        assert raw > 1.5, "the clip is active on this batch"
        after_clip = math.sqrt(sum(float((getattr(head, n).grad ** 2).sum()) for n in NAMES))
        assert after_clip == pytest.approx(CLIP, abs=1e-5), (raw, after_clip)
        for name in NAMES:
            torch.testing.assert_close(getattr(head, name).grad[0], grads[NAMES.index(name)], rtol=0, atol=1e-12)
            torch.testing.assert_close(getattr(head, name)[0], p[name].detach(), rtol=0, atol=1e-12, msg=name)
    torch.testing.assert_close(head.norm_running_mean[0], norm["mean"], rtol=0, atol=1e-12)
    assert optimiser.param_groups[0]["lr"] == LR


def test_the_learning_rate_follows_the_cosine_once_per_epoch():
    head = FoldHeads(1, CONFIG.fusion_dim, CONFIG.head)
    optimiser, schedule = make_optimiser(head, Recipe())
    rates = []
    for _ in range(EPOCHS):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()  # (no gradients: nothing moves) the order torch expects, so no warning
        schedule.step()
    assert rates == pytest.approx([cosine_lr(e) for e in range(EPOCHS)], rel=1e-12, abs=0)
    assert rates[5] == pytest.approx(LR / 2) and rates[-1] < 0.03 * LR


def test_flips_are_drawn_per_image_independently_with_p_one_half():
    generator = torch.Generator().manual_seed(SEED)
    flips = draw_flips(generator, 4000, Recipe())
    uniform = torch.rand(2, 4000, generator=torch.Generator().manual_seed(SEED))
    assert flips.tolist() == (uniform < FLIP).long().tolist(), "row 0 the references, row 1 the distorted images"
    assert abs(float(flips.double().mean()) - 0.5) < 0.02
    both = float((flips[0] * flips[1]).double().mean())
    assert abs(both - 0.25) < 0.02, "reference and distorted flips are independent, not one draw"


# -- DSS-SQA: the trainer against the replay -----------------------------------------------------------
TOLERANCE = {"history": 1e-5, "predictions": 1e-4, "state": 1e-5}


def test_every_fold_and_epoch_matches_the_float64_replay(dss):
    for fold, (trained, replay) in enumerate(zip(dss["trained"].folds, dss["replays"], strict=True)):
        assert trained.held_out.tolist() == dss["folds"][fold].tolist()
        np.testing.assert_allclose(trained.history, replay["history"], rtol=0, atol=TOLERANCE["history"])
        best = replay["best"]
        np.testing.assert_allclose(
            trained.predictions, replay["predictions"][best], rtol=0, atol=TOLERANCE["predictions"]
        )
        for name in NAMES:
            # linear1's bias feeds BatchNorm, which removes it: its true gradient is zero, so Adam
            # moves it by float32 rounding noise alone (up to lr per step); only its size is pinned.
            atol = 30 * LR if name == "linear1_bias" else TOLERANCE["state"]
            torch.testing.assert_close(
                trained.head_state[name][0].double(), replay["states"][best][name], rtol=0, atol=atol
            )
        running = trained.head_state["norm_running_mean"][0].double()
        torch.testing.assert_close(running, replay["states"][best]["running"], rtol=0, atol=1e-3)
    assert all(max(r["norms"]) > 2 for r in dss["replays"]), "clipping is active"


@pytest.mark.parametrize("wrong", ["no mse", "no clip", "constant lr", "same flips"])
def test_the_data_tell_each_deviation_from_the_recipe(dss, wrong):
    """Controls: a replay with one part of the recipe changed is far from the trainer (beyond the tolerance)."""
    structure, semantic, scores = dss["data"]
    held_out = dss["folds"][0]
    changed = replay_fold(structure, semantic, scores, np.setdiff1d(np.arange(PAIRS), held_out), held_out, wrong=wrong)
    gap = np.abs(np.array(changed["history"]) - dss["trained"].folds[0].history).max()
    assert gap > 100 * TOLERANCE["history"], gap


def test_the_best_epoch_is_kept_not_the_last(dss):
    not_last = [k for k, r in enumerate(dss["replays"]) if r["best"] != EPOCHS - 1]
    assert len(not_last) >= 3, "the data must have folds whose best epoch is not the last"
    for fold, (trained, replay) in enumerate(zip(dss["trained"].folds, dss["replays"], strict=True)):
        assert trained.best_epoch == replay["best"] + 1, (fold, replay["history"])
        assert trained.figures["final"] == pytest.approx(max(replay["history"]), abs=TOLERANCE["history"])
        # The kept head is the best epoch's: it scores the held-out pairs as that epoch did.
        head = FoldHeads(1, CONFIG.fusion_dim, CONFIG.head)
        head.load_state_dict(trained.head_state)
        structure, semantic, _ = dss["data"]
        held = torch.as_tensor(trained.held_out)
        fused, cosine = fuse(
            structure[held, 0], structure[held + PAIRS, 0], semantic[held, 0], semantic[held + PAIRS, 0]
        )
        with torch.no_grad():
            logits = head.eval()(fused)[:, 0].double()
        logits[cosine < 0.4] = torch.tensor([12.0, -12, -12, -12, -12, -12], dtype=torch.float64)
        rescored = (logits.softmax(-1) @ CLASSES).numpy()
        np.testing.assert_allclose(
            rescored, replay["predictions"][replay["best"]], rtol=0, atol=TOLERANCE["predictions"]
        )
        if fold in not_last:
            assert np.abs(rescored - replay["predictions"][-1]).max() > 10 * TOLERANCE["predictions"], "not the last"


def test_of_equal_best_epochs_the_first_is_kept():
    """Every held-out pair vetoed by the gate: constant predictions, every epoch's Final the worst (-inf)."""
    structure, semantic, scores = feature_set()
    semantic[PAIRS:] = -semantic[:PAIRS]  # cosine -1 for every pair
    rows = (np.arange(PAIRS), np.arange(PAIRS, 2 * PAIRS))
    result = train_folds(CONFIG, structure, semantic, *rows, scores, Recipe(folds=2, epochs=3), progress=False)
    assert all(fold.history == [-math.inf] * 3 and fold.best_epoch == 1 for fold in result.folds)
