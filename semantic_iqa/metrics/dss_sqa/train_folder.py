"""Train DSS-SQA from a labelled folder to a weights folder: check, cache features, train, export.

The recipe itself (folds, loss, optimiser, flips, the per-fold loop) is in `train.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._version import __version__
from ...feature_cache import default_cache_dir
from ...outputs import check_output_folder
from .data import PairSet, read_pairs
from .features import FeatureCache
from .heads import FoldHeads
from .model import DSSSQA
from .report import TrainingResult, write_report
from .train import Recipe, checked_folds, train_folds


def export_model(base: DSSSQA, result: TrainingResult, provenance: dict[str, Any]) -> DSSSQA:
    """The trained folds as one model on `base`'s backbones, with the figures in its provenance."""
    config = replace(base.config, num_folds=len(result.folds), provenance=provenance)
    heads = FoldHeads(config.num_folds, config.fusion_dim, config.head)
    single = FoldHeads(1, config.fusion_dim, config.head)
    for fold, fold_result in enumerate(result.folds):
        single.load_state_dict(fold_result.head_state)
        heads.load_fold_state_dict(fold, single.fold_state_dict(0))
    return DSSSQA(config, base.structure, base.semantic, heads).eval()


def train_from_folder(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scores_file: str | os.PathLike | None = None,
    backbones_from: str | os.PathLike | None = None,
    recipe: Recipe | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    workers: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainingResult:
    """Check a labelled data set, cache its features, train the folds and export a weights folder.

    The heads are trained on the reference backbones, fetched from their Hub repos at the
    pinned revisions (`REFERENCE_CONFIG`), unless `backbones_from` names a weights folder or
    Hub repo whose backbones (and preprocessing) to use instead. No published model is
    needed. The folder `out` gets the weights (with the figures in the model card) and
    `out/training/`: report.json, oof_predictions.csv and, when matplotlib is installed,
    oof_scatter.png. Backbones referenced from the Hub stay references: `out` holds the heads.
    A non-empty `out` that is not a DSS-SQA weights folder is written into only with `overwrite`;
    never one of the inputs (the data set, the score table, the `backbones_from` folder).
    """
    recipe = recipe or Recipe()
    pairs = read_pairs(data_dir, scores_file)  # every problem reported before any compute
    checked_folds(pairs.scores, recipe.folds, recipe.seed)
    out = Path(out)
    inputs = [data_dir, scores_file, backbones_from]
    check_output_folder(out, metric=DSSSQA.name, overwrite=overwrite, inputs=inputs)  # before any compute
    if backbones_from is None:
        base = DSSSQA.from_backbones(device=device)
    else:
        base = DSSSQA.from_pretrained(backbones_from, device=device)
    cache = FeatureCache(cache_dir or default_cache_dir(), base)
    keys = cache.extract(pairs.ref_paths + pairs.dist_paths, batch_size=batch_size, workers=workers, progress=progress)
    unique = list(dict.fromkeys(keys))
    row = {key: index for index, key in enumerate(unique)}
    structure, semantic = cache.load(unique)
    ref_index = np.asarray([row[k] for k in keys[: len(pairs)]])
    dist_index = np.asarray([row[k] for k in keys[len(pairs) :]])
    result = train_folds(
        base.config, structure, semantic, ref_index, dist_index, pairs.scores, recipe, progress, device=base.device
    )

    provenance = _provenance(pairs, keys, result, base, data_dir, backbones_from, recipe)
    export_model(base, result, provenance).save_pretrained(out, overwrite=overwrite)
    write_report(out / "training", result, pairs)
    return result


def _provenance(
    pairs: PairSet,
    keys: list[str],
    result: TrainingResult,
    base: DSSSQA,
    data_dir: str | os.PathLike,
    backbones_from: str | os.PathLike | None,
    recipe: Recipe,
) -> dict[str, Any]:
    """What the model card and `config.json` record: the data's hash, the backbones, the recipe, the figures."""
    data_hash = hashlib.sha256(
        json.dumps(
            [
                [n, keys[i], keys[len(pairs) + i], float(s)]
                for i, (n, s) in enumerate(zip(pairs.names, pairs.scores, strict=True))
            ]
        ).encode()
    ).hexdigest()
    summary = result.summary()
    return {
        "trained_by": f"semantic-iqa {__version__} train",
        "training_data": f"{len(pairs)} labelled pairs from {Path(data_dir).name} (sha256 {data_hash[:16]}...)",
        "data_sha256": data_hash,
        "backbones": {
            role: (f"{spec.repo_id}@{spec.revision}" if spec.repo_id else f"stored ({spec.name})")
            for role, spec in (("structure", base.config.structure), ("semantic", base.config.semantic))
        },
        "backbones_from": str(backbones_from) if backbones_from is not None else "reference Hub backbones",
        "recipe": asdict(recipe),
        "cross_validation": {
            **{f"pooled {name}": round(value, 4) for name, value in result.pooled.items()},
            **{
                f"{name} (fold mean, std)": [round(v, 4) for v in summary[f"{name}_fold_mean_std"]]
                for name in ("srocc", "plcc", "final")
            },
        },
    }
