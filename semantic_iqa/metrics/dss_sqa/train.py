"""Train the fold heads on cached backbone features, exactly as the reference recipe does.

Recipe (what produced the published folds): stratified round-robin folds (seed 3407);
per fold, CrossEntropy(logits, round(score)) + MSE(expected score, score); AdamW lr 2e-4,
weight decay 0.01; cosine annealing over the epochs, stepped per epoch; batch 32, shuffled;
gradient-norm clipping at 1.0; reference and distorted image flipped left-right
independently with p = 0.5; after each epoch the held-out fold is scored (eval mode, so
with the gate) and the epoch with the best held-out Final = 0.6 SROCC + 0.4 PLCC is kept.

The backbones are frozen, so their outputs for the plain and the flipped version of every
image are computed once (`semantic_iqa.features`): each training step draws the flips and
picks the matching cached features, which is the same training distribution as running the
backbones on every step, in seconds instead of hours.

Training from a labelled folder to a weights folder (`train_from_folder`, `export_model`)
is in `train_folder.py`; this module is the recipe.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...errors import DatasetError, InvalidOptionError
from ...evaluation import agreement, final_score, plcc, srocc
from .config import DSSSQAConfig
from .fusion import fuse_features
from .gate import apply_gate
from .heads import FoldHeads, expected_score
from .report import FoldResult, TrainingResult


@dataclass(frozen=True)
class Recipe:
    """Training settings; the defaults are the reference recipe."""

    folds: int = 5
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    flip_probability: float = 0.5
    seed: int = 3407


def stratified_folds(scores: np.ndarray, folds: int = 5, seed: int = 3407) -> list[np.ndarray]:
    """The reference split: bin by round(score); for each bin in first-seen order, shuffle its
    indices with one shared `numpy.random.default_rng(seed)` and deal them round-robin to folds
    0..F-1; sort each fold's indices."""
    rng = np.random.default_rng(seed)
    bins: dict[int, list[int]] = {}
    for index, score in enumerate(scores):
        bins.setdefault(int(round(float(score))), []).append(index)
    assignment: list[list[int]] = [[] for _ in range(folds)]
    for members in bins.values():
        for position, index in enumerate(rng.permutation(np.asarray(members))):
            assignment[position % folds].append(int(index))
    return [np.sort(np.asarray(fold, dtype=np.int64)) for fold in assignment]


def checked_folds(scores: np.ndarray, folds: int = 5, seed: int = 3407) -> list[np.ndarray]:
    """`stratified_folds`, refusing a split in which a fold holds out fewer than 2 pairs.

    Such a fold cannot be scored (a correlation needs two pairs) and its head cannot pick an
    epoch; say so before any backbone work rather than fail in the middle.
    """
    if folds < 2:
        raise InvalidOptionError(f"cross-validation needs at least 2 folds, got {folds}")
    splits = stratified_folds(scores, folds, seed)
    small = [index for index, held_out in enumerate(splits) if len(held_out) < 2]
    if small:
        raise DatasetError(
            f"{len(scores)} labelled pairs are too few for {folds} folds: fold(s) {small} would hold out fewer "
            "than 2 pairs; use fewer --folds or more pairs"
        )
    return splits


def recipe_loss(logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The reference loss of a batch: CrossEntropy(logits, round(score)) + MSE(expected score, score).

    Both terms weigh 1, no label smoothing. logits [B, C], scores [B] in [0, C - 1] -> [].
    """
    return F.cross_entropy(logits, scores.round().long()) + F.mse_loss(expected_score(logits), scores)


def make_optimiser(
    head: torch.nn.Module, recipe: Recipe
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """AdamW over `head` (the recipe's lr and weight decay; torch's betas and eps) and its cosine
    schedule over `recipe.epochs`, which the trainer steps once per epoch."""
    optimiser = torch.optim.AdamW(head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    return optimiser, torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=recipe.epochs)


def draw_flips(generator: torch.Generator, count: int, recipe: Recipe) -> torch.Tensor:
    """One batch's flips, [2, count] of 0/1: row 0 the references, row 1 the distorted images,
    each pair's two drawn independently with `recipe.flip_probability` (a CPU generator)."""
    return (torch.rand(2, count, generator=generator) < recipe.flip_probability).long()


def recipe_step(
    head: FoldHeads, optimiser: torch.optim.Optimizer, fused: torch.Tensor, scores: torch.Tensor, recipe: Recipe
) -> torch.Tensor:
    """One update of a one-fold `head` on one batch of fused features [B, D] with scores [B]:
    `recipe_loss`, gradients clipped to a total norm of `recipe.grad_clip`, an optimiser step.
    Returns the batch's loss (detached). The caller steps the schedule once per epoch."""
    loss = recipe_loss(head(fused)[:, 0], scores)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(head.parameters(), recipe.grad_clip)
    optimiser.step()
    return loss.detach()


def train_folds(
    config: DSSSQAConfig,
    structure: torch.Tensor,
    semantic: torch.Tensor,
    ref_index: np.ndarray,
    dist_index: np.ndarray,
    scores: np.ndarray,
    recipe: Recipe | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> TrainingResult:
    """Train one head per fold on cached features.

    Args:
        config: gives the head architecture and the gate used for held-out scoring.
        structure: [N_images, 2, Ds] cached structure features (plain, flipped).
        semantic: [N_images, 2, Dc] cached semantic features (plain, flipped).
        ref_index: [P] row of each pair's reference image in the feature tensors.
        dist_index: [P] row of each pair's distorted image.
        scores: [P] human scores in [0, 5].
        recipe: training settings.
        progress: show a progress bar over folds.
        device: where to train (default: where `structure` is).
    """
    recipe = recipe or Recipe()
    device = torch.device(device) if device is not None else structure.device
    structure, semantic = structure.to(device, torch.float32), semantic.to(device, torch.float32)
    targets = torch.as_tensor(scores, dtype=torch.float32, device=device)
    ref_rows = torch.as_tensor(ref_index, device=device)
    dist_rows = torch.as_tensor(dist_index, device=device)
    splits = checked_folds(scores, recipe.folds, recipe.seed)
    results = []
    for held_out in tqdm(splits, desc="training folds", unit="fold", disable=not progress):
        train_pairs = np.setdiff1d(np.arange(len(scores)), held_out)
        results.append(
            _train_one_fold(config, structure, semantic, ref_rows, dist_rows, targets, train_pairs, held_out, recipe)
        )
    out_of_fold = np.empty(len(scores))
    for result in results:
        out_of_fold[result.held_out] = result.predictions
    return TrainingResult(results, agreement(out_of_fold, scores), out_of_fold)


def _train_one_fold(config, structure, semantic, ref_rows, dist_rows, targets, train_pairs, held_out, recipe):
    device = targets.device
    torch.manual_seed(recipe.seed)  # every fold starts as a separate run of the recipe would
    generator = torch.Generator(device="cpu").manual_seed(recipe.seed)
    head = FoldHeads(1, config.fusion_dim, config.head).to(device)
    optimiser, schedule = make_optimiser(head, recipe)
    train_pairs = torch.as_tensor(train_pairs, device=device)
    held = torch.as_tensor(held_out, device=device)
    best: FoldResult | None = None
    best_final = -math.inf
    history = []
    for epoch in range(recipe.epochs):
        head.train()
        order = train_pairs[torch.randperm(len(train_pairs), generator=generator).to(device)]
        for batch in order.split(recipe.batch_size):
            if len(batch) < 2:  # BatchNorm cannot train on a single pair
                continue
            flips = draw_flips(generator, len(batch), recipe).to(device)
            fused = _fused(structure, semantic, ref_rows[batch], dist_rows[batch], flips[0], flips[1])
            recipe_step(head, optimiser, fused, targets[batch], recipe)
        schedule.step()  # per epoch, not per batch

        predictions = _held_out_scores(config, head, structure, semantic, ref_rows[held], dist_rows[held])
        labels = targets[held].cpu().numpy()
        final = final_score(srocc(predictions, labels), plcc(predictions, labels))
        final = -math.inf if math.isnan(final) else final  # constant predictions: worst, not NaN
        history.append(final)
        if best is None or final > best_final:
            best_final = final
            best = FoldResult(
                held_out, epoch + 1, agreement(predictions, labels), predictions, copy.deepcopy(head.state_dict())
            )
    best.history = history
    return best


def _fused(structure, semantic, ref_rows, dist_rows, ref_flip, dist_flip) -> torch.Tensor:
    fused, _ = fuse_features(
        structure[ref_rows, ref_flip],
        structure[dist_rows, dist_flip],
        semantic[ref_rows, ref_flip],
        semantic[dist_rows, dist_flip],
    )
    return fused


@torch.no_grad()
def _held_out_scores(config, head, structure, semantic, ref_rows, dist_rows) -> np.ndarray:
    head.eval()
    plain = torch.zeros(len(ref_rows), dtype=torch.long, device=ref_rows.device)
    fused, cosine = fuse_features(
        structure[ref_rows, plain], structure[dist_rows, plain], semantic[ref_rows, plain], semantic[dist_rows, plain]
    )
    logits, _ = apply_gate(head(fused), cosine, config.gate.mode, config.gate)
    return expected_score(logits)[:, 0].cpu().numpy().astype(np.float64)
