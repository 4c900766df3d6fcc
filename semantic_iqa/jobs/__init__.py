"""Scoring jobs: many items scored into a result table, safely and resumably, by any engine.

- `items`: what to score (two folders paired by name, one folder, or a manifest);
- `columns`: the result's columns, from the metric's declared result fields;
- `results`: the result table (model fingerprint, writer, summary);
- `resume`: what a resumed job keeps of an existing result (rows read back and checked);
- `planner`: one plan for every engine (what to skip, what to score, the counts, the summary);
- `local`: the local engine, through the one batch loop (`semantic_iqa.scoring`).

The Ray engine (`semantic_iqa.ray`) runs the same items into the same table on a cluster.
"""

from .columns import flatten_record, result_columns
from .items import JobInputs, PairedFolders, image_folder, input_signature, job_items, pair_folders, read_manifest
from .local import check_not_input, run_job
from .planner import JobInterrupted, check_output
from .results import ResultWriter, model_fingerprint, summary, weights_fingerprint
from .resume import read_done, read_rows

__all__ = [
    "JobInputs",
    "JobInterrupted",
    "PairedFolders",
    "ResultWriter",
    "check_not_input",
    "check_output",
    "flatten_record",
    "image_folder",
    "input_signature",
    "job_items",
    "model_fingerprint",
    "pair_folders",
    "read_done",
    "read_manifest",
    "read_rows",
    "result_columns",
    "run_job",
    "summary",
    "weights_fingerprint",
]
