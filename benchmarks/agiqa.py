"""MST-CLIPIQA on an AGIQA-3K-layout data set: SRCC and PLCC against the human MOS (benchmark harness part).

`run.py --agiqa DIR --mst-weights W` scores every image of the chosen part of the data set
with the MST-CLIPIQA weights W (the variant is the folder's) and correlates the scores with
`mos_quality`, and for a variant-B (prompt-anchored) model also with `mos_align`. The part is
the reference recipe's held-out 20 % (`random_split`, seed 42: what a model trained by the
recipe on this data set never saw) or all images (`--agiqa-split all`). Weights whose
provenance says they are random are labelled "RANDOM WEIGHTS: plumbing test only". A
missing data set or missing weights are skipped with a line.
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import numpy as np
import torch

from semantic_iqa.errors import DatasetError, WeightsError
from semantic_iqa.evaluation import agreement, logistic_plcc
from semantic_iqa.metrics.mst_clipiqa.data import read_agiqa
from semantic_iqa.metrics.mst_clipiqa.model import MSTCLIPIQA
from semantic_iqa.metrics.mst_clipiqa.recipe import reference_split

SPLITS = ("val", "all")
RANDOM_NOTE = "RANDOM WEIGHTS: plumbing test only, not a figure"
# Context only: the authors' README, on AGIQA-1K (another data set), not computed here.
PUBLISHED = "Published (authors' README, AGIQA-1K, not this data set): SRCC variant A 0.8990, variant B 0.9091."


def run_agiqa(
    root: Path | None, weights: str | None, device: torch.device, batch_size: int, split: str = "val"
) -> dict | None:
    """Figures of MST-CLIPIQA on the data set at `root`; None (with a printed line) when skipped."""
    if root is None:
        print("agiqa: not given, skipped")
        return None
    if not root.exists():
        print(f"agiqa: {root} not found, skipped")
        return None
    if weights is None:
        print("agiqa: no --mst-weights given (no MST-CLIPIQA weights are published), skipped")
        return None
    try:
        model = MSTCLIPIQA.from_pretrained(weights, device=device)
    except WeightsError as exc:
        print(f"agiqa: MST-CLIPIQA weights {weights} cannot be used ({exc}), skipped")
        return None
    prompted = model.variant == "B"
    columns = ("mos_quality", "mos_align") if prompted else ("mos_quality",)
    try:
        sets = {column: read_agiqa(root, column, need_prompts=prompted) for column in columns}
    except DatasetError as exc:
        print(f"agiqa: {exc}; skipped")
        return None
    data = sets["mos_quality"]
    rows = reference_split(len(data))[1] if split == "val" else np.arange(len(data))
    start = time.perf_counter()
    prompts = [data.prompts[i] for i in rows] if prompted else None
    scores = model.predict([data.paths[i] for i in rows], prompts, batch_size=batch_size).score
    seconds = time.perf_counter() - start
    predictions = scores.float().cpu().numpy().astype(np.float64)
    random = "random" in str(model.config.provenance.get("note", ""))
    result = {
        "metric": f"MST-CLIPIQA variant {model.variant}",
        "implementation": f"semantic-iqa {importlib.metadata.version('semantic-iqa')} ({weights})",
        "note": RANDOM_NOTE if random else "",
        "split": "held-out 20 % (random_split, seed 42)" if split == "val" else "all images",
        "images": int(len(rows)),
        "seconds": seconds,
        "names": [data.names[i] for i in rows],
        "predictions": predictions.tolist(),
    }
    for column, labelled in sets.items():
        labels = labelled.mos[rows]
        figures = agreement(predictions, labels)
        result[column] = {
            "srocc": figures["srocc"],
            "plcc": figures["plcc"],
            "plcc_logistic": logistic_plcc(predictions, labels),
            "labels": labels.tolist(),
        }
    return result


def report_lines(result: dict) -> list[str]:
    """The report.md section of one AGIQA run."""
    flag = f" ({result['note']})" if result["note"] else ""
    lines = [
        f"## AGIQA-3K: {result['metric']}{flag}, {result['images']} images ({result['split']})",
        "",
        f"Implementation: {result['implementation']}; {result['seconds']:.1f} s to score.",
        "",
        "| labels | SRCC | PLCC | PLCC (logistic fit) |",
        "|---|---|---|---|",
    ]
    for column in ("mos_quality", "mos_align"):
        if column in result:
            r = result[column]
            lines.append(f"| {column} | {r['srocc']:.4f} | {r['plcc']:.4f} | {r['plcc_logistic']:.4f} |")
    return [*lines, "", PUBLISHED, ""]
