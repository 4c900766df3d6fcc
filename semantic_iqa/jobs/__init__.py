"""Scoring jobs: many items scored into a result table, safely and resumably, by any engine.

- `items`: what to score (two folders paired by name, one folder, or a manifest);
- `results`: the result table (columns, model fingerprint, writer, summary);
- `resume`: what a resumed job keeps of an existing result (rows read back and checked);
- `local`: the local engine, through the one batch loop (`semantic_iqa.scoring`).

The Ray engine (`semantic_iqa.ray`) runs the same items into the same table on a cluster.
"""

from .items import JobInputs, PairedFolders, image_folder, input_signature, job_items, pair_folders, read_manifest
from .local import JobInterrupted, check_not_input, check_output, run_job
from .results import ResultWriter, flatten_record, model_fingerprint, result_columns, summary, weights_fingerprint
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
