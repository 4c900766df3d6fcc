"""Train MST-CLIPIQA's fusion and head on cached encoder features, exactly as the reference recipe.

Recipe (/work/shared/reference/mst-clipiqa.md, "Training recipe"; its pieces in
`recipe.py`): MSE + pairwise margin ranking, Adam lr 5e-6 weight decay 1e-3, 20 epochs,
batch 8, shuffled, no scheduler, no clipping; split `random_split(range(N), [int(0.8 N),
rest], generator=Generator().manual_seed(42))`; after each epoch the held-out 20 % is
scored and the epoch with the best scipy Spearman is kept; SRCC and raw PLCC are reported.

The towers are frozen and the recipe has no augmentation, so each image's two embeddings
(and each prompt's token states) are computed once (`features.py`) and training runs on
them: the same updates as running the towers every step, in seconds instead of hours.
What the reference leaves to chance is seeded here: the fresh fusion/head initialisation
and the shuffling use `recipe.seed`, so a run is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..._version import __version__
from ...backbones import CLIPTextEncoder, ProjectedCLIPEncoder
from ...devices import resolve_device
from ...errors import InvalidOptionError
from ...evaluation import plcc, srocc
from ...feature_cache import default_cache_dir
from ...outputs import check_output_folder
from .config import MSTCLIPIQAConfig
from .data import LABEL_COLUMNS, read_agiqa
from .features import CachedFeatures, MSTFeatureCache
from .model import MSTCLIPIQA
from .recipe import (
    FeatureScorer,
    Recipe,
    checked_split,
    make_optimiser,
    pairwise_ranking_loss,
    recipe_loss,
    recipe_step,
    reference_split,
)
from .training_report import TrainingResult, write_report

__all__ = [
    "FeatureScorer",
    "Recipe",
    "TrainingResult",
    "checked_split",
    "make_optimiser",
    "pairwise_ranking_loss",
    "recipe_loss",
    "recipe_step",
    "reference_split",
    "score_features",
    "train_from_folder",
    "train_on_features",
    "variant_for_labels",
]

# What each label measures, and the variant the reference trains on it.
DEFAULT_VARIANT = {"mos_quality": "A", "mos_align": "B"}


def train_on_features(
    model: MSTCLIPIQA,
    features: CachedFeatures,
    mos: np.ndarray,
    recipe: Recipe | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train a fresh fusion + head of `model`'s variant on cached features (the reference recipe).

    Args:
        model: gives the config and (variant A) the template embeddings; not modified.
        features: N images' cached features (`MSTFeatureCache.features`).
        mos: [N] labels (0..5, higher is better).
        recipe: training settings (default: the reference).
        device: where to train (default: where the features are).
        progress: show a progress bar over epochs.
    """
    recipe = recipe or Recipe()
    device = torch.device(device) if device is not None else features.coarse.device
    train_rows, val_rows = checked_split(len(features), recipe)
    targets = torch.as_tensor(mos, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):  # the global RNG of the caller is left as it was
        torch.manual_seed(recipe.seed)
        scorer = FeatureScorer(model).to(device)
    optimiser = make_optimiser(scorer, recipe)
    shuffler = torch.Generator().manual_seed(recipe.seed)
    loader = DataLoader(train_rows.tolist(), batch_size=recipe.batch_size, shuffle=True, generator=shuffler)
    labels = np.asarray(mos, dtype=np.float64)[val_rows]
    best: TrainingResult | None = None
    best_srocc, history = -math.inf, []
    for epoch in tqdm(range(1, recipe.epochs + 1), desc="training", unit="epoch", disable=not progress):
        scorer.train()
        losses = [
            recipe_step(scorer, optimiser, features.batch(rows, device), targets[rows].to(device), recipe)
            for rows in loader
        ]
        predictions = score_features(scorer, features, val_rows, device)
        figures = {"srocc": srocc(predictions, labels), "plcc": plcc(predictions, labels)}
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **figures})
        ranked = -math.inf if math.isnan(figures["srocc"]) else figures["srocc"]  # constant output: worst
        if best is None or ranked > best_srocc:
            best_srocc = ranked
            state = {name: t.detach().cpu().clone() for name, t in scorer.state_dict().items()}
            best = TrainingResult(epoch, figures, train_rows, val_rows, predictions, state)
    best.history = history
    return best


@torch.no_grad()
def score_features(
    scorer: FeatureScorer, features: CachedFeatures, rows: np.ndarray, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Scores of `rows` in eval mode, float64 [len(rows)], higher is better."""
    scorer.eval()
    scores = [scorer(**features.batch(part, device)) for part in np.array_split(rows, max(1, len(rows) // batch_size))]
    return torch.cat(scores).float().cpu().numpy().astype(np.float64)


def variant_for_labels(labels: str, variant: str | None = None) -> str:
    """The variant to train: `variant` if given, else A for mos_quality and B for mos_align."""
    if variant is not None:
        if variant not in ("A", "B"):
            raise InvalidOptionError(f"unknown MST-CLIPIQA variant {variant!r}; choose A or B")
        return variant
    return DEFAULT_VARIANT.get(labels, "A")


def export_model(base: MSTCLIPIQA, result: TrainingResult, provenance: dict[str, Any]) -> MSTCLIPIQA:
    """The trained parts on `base`'s frozen towers (shared, not copied), provenance in the config."""
    config = replace(base.config, provenance=provenance)
    text = base.encoders["text"] if "text" in base.encoders else None
    model = MSTCLIPIQA(config, base.encoders["coarse"], base.encoders["fine"], text)
    model.load_head_tensors(result.head_state)
    return model.to(base.device).eval()


def train_from_folder(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    labels: str = "mos_quality",
    variant: str | None = None,
    backbones_from: MSTCLIPIQA | str | os.PathLike | None = None,
    recipe: Recipe | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainingResult:
    """Check an AGIQA-3K-layout data set, cache its features, train, report and export.

    Args:
        data_dir: folder with `data.csv` (or the CSV itself), see `data.read_agiqa`.
        out: weights folder to write (`save_pretrained`), plus `out/training/`: report.json,
            val_predictions.csv and, with matplotlib, val_scatter.png.
        labels: "mos_quality" or "mos_align" (see `data.read_agiqa` for the reference CSV).
        variant: "A" or "B"; default: A for mos_quality, B for mos_align.
        backbones_from: the frozen towers to train on: a model of the right variant, a weights
            folder or Hub repo (`MSTCLIPIQA.from_pretrained`), or None for the reference towers.
        recipe, cache_dir, device ("auto"/None = CUDA if present), batch_size and workers (extraction).
        overwrite: write into a non-empty `out` that is not an MST-CLIPIQA weights folder (never
            into the data set's folder or the `backbones_from` folder).

    Returns:
        The `TrainingResult`, its `model` the exported model.

    Everything that can be refused is refused before any encoder work: the data set (every
    problem at once), a split too small, an occupied `out`, an unknown variant.
    """
    recipe = recipe or Recipe()
    if labels not in (*LABEL_COLUMNS, "mos"):
        raise InvalidOptionError(f"unknown labels {labels!r}; choose one of {', '.join(LABEL_COLUMNS)}")
    variant = variant_for_labels(labels, variant)
    data = read_agiqa(data_dir, labels, need_prompts=variant == "B")
    checked_split(len(data), recipe)
    out = Path(out)
    paths = [backbones_from] if isinstance(backbones_from, (str, os.PathLike)) else []
    check_output_folder(out, metric=MSTCLIPIQA.name, overwrite=overwrite, inputs=[data.csv_path.parent, *paths])
    base = _base_model(backbones_from, variant, device)
    cache = MSTFeatureCache(cache_dir or default_cache_dir(), base)
    features, keys = cache.features(data.paths, data.prompts, batch_size=batch_size, workers=workers, progress=progress)
    result = train_on_features(base, features, data.mos, recipe, device=base.device, progress=progress)

    rows = [[n, k, p, float(m)] for n, k, p, m in zip(data.names, keys, data.prompts, data.mos, strict=True)]
    data_hash = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    provenance = {
        "trained_by": f"semantic-iqa {__version__} train",
        "package_version": __version__,
        "training_data": f"{len(data)} images from {data.csv_path.parent.name}/{data.csv_path.name} "
        f"({data.layout} layout, sha256 {data_hash[:16]}...)",
        "data_sha256": data_hash,
        "labels": data.labels,
        "label_column": data.label_column,
        "variant": variant,
        "seed": recipe.seed,
        "recipe": asdict(recipe),
        "split": f"random_split {len(result.train_rows)}/{len(result.val_rows)}, generator seed {recipe.seed}",
        "best_epoch": result.best_epoch,
        "validation": {name: round(value, 4) for name, value in result.figures.items()},
        "backbones": {
            role: f"{spec.repo_id}@{spec.revision}" if spec.repo_id else f"stored ({spec.name})"
            for role, spec in (("coarse", base.config.coarse), ("fine", base.config.fine), ("text", base.config.text))
        },
        "backbones_from": "reference Hub backbones"
        if backbones_from is None
        else (str(backbones_from) if isinstance(backbones_from, (str, os.PathLike)) else "a model passed in"),
    }
    result.model = export_model(base, result, provenance)
    result.model.save_pretrained(out, overwrite=overwrite)
    write_report(out / "training", result, data, provenance)
    return result


def _base_model(
    base: MSTCLIPIQA | str | os.PathLike | None, variant: str, device: str | torch.device | None
) -> MSTCLIPIQA:
    """The model whose frozen towers train: given, loaded, or the reference towers (on `device`)."""
    if isinstance(base, MSTCLIPIQA):
        model = base
    elif base is not None:
        model = MSTCLIPIQA.from_pretrained(base, device="cpu")
    else:
        model = reference_base_model(variant)
    if model.variant != variant:
        raise InvalidOptionError(
            f"the base model is variant {model.variant} but variant {variant} is to be trained: variant B needs the "
            "prompt text tower (without projection), variant A the template embeddings; pass a base of that variant"
        )
    # A model passed in stays where it is unless a device is named; others go to "auto".
    return model if isinstance(base, MSTCLIPIQA) and device is None else model.to(resolve_device(device))


def reference_base_model(variant: str) -> MSTCLIPIQA:
    """The reference towers (CLIP ViT-B/32 and B/16, text side B/32) from the Hub, fresh fusion and head."""
    config = MSTCLIPIQAConfig(variant=variant)
    coarse = ProjectedCLIPEncoder.from_spec(config.coarse)
    fine = ProjectedCLIPEncoder.from_spec(config.fine)
    text = CLIPTextEncoder.from_spec(config.text, with_projection=variant == "A")
    model = MSTCLIPIQA(config, coarse, fine, text if variant == "B" else None)
    if variant == "A":
        model.compute_text_features(text)  # the five templates, once; the text tower is then dropped
    return model
