"""`semantic-iqa score` and `semantic-iqa score-dir`, for every metric (`--metric NAME`)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..api import load_metric
from ..errors import InvalidInputError, InvalidOptionError
from ..registry import MetricInfo, metric_info
from ..scoring import iterate_batches
from .parser import DEFAULT_WORKERS, non_negative_int, positive_int

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})
_LISTED_NAMES = 5  # names shown in a one-line warning before "..."
_LIST_COLUMNS = {"fold_scores": "fold", "probabilities": "p"}  # list-valued results -> fold_0, p_0, ...


def add_commands(commands: argparse._SubParsersAction, model_options: argparse.ArgumentParser) -> None:
    score = commands.add_parser(
        "score",
        parents=[model_options],
        help="score one pair (full-reference metrics: REF DIST) or images (no-reference metrics) and print it",
    )
    score.add_argument(
        "images", nargs="+", help="REF DIST for a full-reference metric; IMAGE... for a no-reference one"
    )
    score.add_argument("--prompt", action="append", help="generation prompt (mst_clipiqa_prompt): once per image")
    score.add_argument("--json", action="store_true", help="print every figure of the metric as JSON")
    score.set_defaults(handler=score_command)

    score_dir = commands.add_parser(
        "score-dir",
        parents=[model_options],
        help="score a folder: REF_DIR DIST_DIR (pairs by file name) or IMAGE_DIR (no-reference metrics)",
    )
    score_dir.add_argument("folders", nargs="+", help="REF_DIR DIST_DIR, or IMAGE_DIR for a no-reference metric")
    score_dir.add_argument("--out", required=True, help="CSV file to write, one row per pair or image")
    score_dir.add_argument("--prompts", help="mst_clipiqa_prompt: CSV of image_name,prompt (or AGIQA's name,prompt)")
    score_dir.add_argument("--json", action="store_true", help="also write the results as JSON beside --out")
    score_dir.add_argument("--batch-size", type=positive_int, default=16, help="items per backbone pass")
    score_dir.add_argument("--workers", type=non_negative_int, default=DEFAULT_WORKERS, help="decoding processes")
    score_dir.set_defaults(handler=score_dir_command)


def _options(info: MetricInfo, args: argparse.Namespace) -> dict[str, Any]:
    if info.name == "dss_sqa":
        return {"gate": args.gate}
    if args.gate is not None:
        raise InvalidOptionError(f"--gate is a dss_sqa option; {info.name} has no gate")
    return {}


def _check_inputs(info: MetricInfo, images: list[str], prompts: list[str] | None) -> None:
    if info.kind == "FR" and len(images) != 2:
        raise InvalidInputError(f"{info.name} is full-reference: give REF DIST, got {len(images)} image(s)")
    wants_prompt = "prompt" in info.inputs
    if wants_prompt and (prompts is None or len(prompts) != len(images)):
        raise InvalidInputError(f"{info.name} needs one --prompt per image ({len(images)} image(s))")
    if not wants_prompt and prompts:
        raise InvalidOptionError(f"--prompt is for metrics that take a prompt (mst_clipiqa_prompt), not {info.name}")


def score_command(args: argparse.Namespace) -> int:
    info = metric_info(args.metric)
    _check_inputs(info, args.images, args.prompt)
    options = _options(info, args)
    metric = load_metric(info.name, args.weights, args.device, args.precision)
    if info.kind == "FR":
        records = metric.predict(args.images[0], args.images[1], **options).to_records()
        names = [args.images[1]]
    else:
        records = metric.predict(args.images, args.prompt, **options).to_records()
        names = args.images
    if args.json:
        print(
            json.dumps(
                records[0] if len(records) == 1 else [{"image": n, **r} for n, r in zip(names, records, strict=True)]
            )
        )
    elif len(records) == 1:
        print(f"{records[0]['score']:.4f}")
    else:
        for name, record in zip(names, records, strict=True):
            print(f"{record['score']:.4f}\t{name}")
    return 0


def score_dir_command(args: argparse.Namespace) -> int:
    info = metric_info(args.metric)
    options = _options(info, args)
    out = Path(args.out)
    names, columns, unpaired = _folder_columns(info, [Path(f) for f in args.folders], args.prompts)
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: folder {out.parent} does not exist")
    if args.json and out.suffix.lower() == ".json":
        raise InvalidInputError(f"--out {out} would be overwritten by the --json output; give the CSV a .csv name")

    metric = load_metric(info.name, args.weights, args.device, args.precision)
    image_columns = [c for c in info.inputs if c != "prompt"]
    records: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # rows waiting for the header (known from the first score)
    writer = None
    with open(out, "w", newline="", encoding="utf-8") as handle:
        for batch in iterate_batches(
            columns,
            image_columns,
            metric.image_transform(),
            batch_size=args.batch_size,
            workers=args.workers,
            device=metric.device,
            progress=None,  # a bar on a terminal only
            unit="pair" if info.kind == "FR" else "image",
        ):
            rows = {i: {"name": names[i], "error": str(error)} for i, error in batch.failures}
            if len(batch):
                with torch.inference_mode():
                    scored = metric.score_batch(batch.images, batch.extras, **options).to_records()
                for index, record in zip(batch.indices, scored, strict=True):
                    rows[index] = {"name": names[index], **_flat(record), "error": ""}
            for index in sorted(rows):  # the batch's items in input order
                records.append(rows[index])
                pending.append(rows[index])
            if writer is None and len(batch):
                writer = csv.DictWriter(handle, list(_flat_keys(records)), restval="")
                writer.writeheader()
            if writer is not None:
                writer.writerows(pending)
                pending.clear()
                handle.flush()  # rows already scored survive an interruption
        if writer is None:  # nothing could be scored
            writer = csv.DictWriter(handle, ["name", "score", "error"], restval="")
            writer.writeheader()
            writer.writerows(pending)

    if args.json:
        results = "pairs" if info.kind == "FR" else "images"
        document = {"metric": info.name, "weights": args.weights, **options, results: records, **unpaired}
        out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in records if r["error"]]
    scores = [r["score"] for r in records if not r["error"]]
    unit = "pair" if info.kind == "FR" else "image"
    if scores:
        print(f"scored {len(scores)} {unit}(s), mean score {sum(scores) / len(scores):.4f} -> {out}")
    if failed:
        print(
            f"semantic-iqa: error: {len(failed)} of {len(records)} {unit}(s) could not be scored "
            f"(first: {failed[0]['error']}); see the error column of {out}",
            file=sys.stderr,
        )
        return 2
    return 0


def _folder_columns(
    info: MetricInfo, folders: list[Path], prompts_file: str | None
) -> tuple[list[str], dict[str, list], dict[str, list[str]]]:
    """(names, columns, unpaired) of a folder job: pairs by identical file name (FR) or every image (NR).

    `unpaired` lists, for full-reference jobs, the files found on one side only.
    """
    expected = 2 if info.kind == "FR" else 1
    if len(folders) != expected:
        what = "REF_DIR DIST_DIR" if expected == 2 else "IMAGE_DIR"
        raise InvalidInputError(f"{info.name} scores {what}; got {len(folders)} folder(s)")
    if info.kind == "NR":
        names = sorted(_image_names(folders[0]))
        if not names:
            raise InvalidInputError(f"no images in {folders[0]}")
        columns: dict[str, list] = {"image": [folders[0] / n for n in names], "name": names}
        if "prompt" in info.inputs:
            columns["prompt"] = _prompts_for(names, prompts_file)
        elif prompts_file:
            raise InvalidOptionError(f"--prompts is for metrics that take a prompt, not {info.name}")
        return names, columns, {}
    ref_dir, dist_dir = folders
    ref_names, dist_names = _image_names(ref_dir), _image_names(dist_dir)
    names = sorted(ref_names & dist_names)
    if not names:
        raise InvalidInputError(
            f"no image file names in common between {ref_dir} ({len(ref_names)} images) "
            f"and {dist_dir} ({len(dist_names)} images); pairs are matched by identical file names"
        )
    unpaired = {"only_in_ref": sorted(ref_names - dist_names), "only_in_dist": sorted(dist_names - ref_names)}
    for folder, lonely in zip((ref_dir, dist_dir), unpaired.values(), strict=True):
        if lonely:
            print(
                f"semantic-iqa: warning: {len(lonely)} file(s) only in {folder}, not scored: {_some(lonely)}",
                file=sys.stderr,
            )
    columns = {"ref": [ref_dir / n for n in names], "dist": [dist_dir / n for n in names], "name": names}
    return names, columns, unpaired


def _prompts_for(names: list[str], prompts_file: str | None) -> list[str]:
    """Each image's prompt from a CSV with `image_name,prompt` (reference loader) or `name,prompt` (AGIQA)."""
    if prompts_file is None:
        raise InvalidInputError("this metric needs each image's generation prompt: --prompts prompts.csv")
    with open(prompts_file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    key = next((k for k in ("image_name", "name") if rows and k in rows[0]), None)
    if key is None or "prompt" not in rows[0]:
        raise InvalidInputError(f"{prompts_file}: needs columns image_name,prompt (or name,prompt)")
    prompts = {row[key]: row["prompt"] for row in rows}
    missing = [n for n in names if n not in prompts]
    if missing:
        raise InvalidInputError(f"{prompts_file} has no prompt for {len(missing)} image(s): {_some(missing)}")
    return [prompts[n] for n in names]


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            row.update({f"{_LIST_COLUMNS.get(key, key)}_{i}": v for i, v in enumerate(value)})
        else:
            row[key] = value
    return row


def _flat_keys(records: list[dict[str, Any]]) -> dict[str, None]:
    keys = {"name": None}
    for record in records:
        if not record["error"]:
            keys.update(dict.fromkeys(record))
            break
    keys.pop("error", None)
    return {**keys, "error": None}


def _image_names(folder: Path) -> set[str]:
    if not folder.is_dir():
        raise InvalidInputError(f"not a folder: {folder}")
    return {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES])
    return shown + (", ..." if len(names) > _LISTED_NAMES else "")
