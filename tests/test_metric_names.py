"""The shared layers name no metric: everything a metric is comes from its declaration.

A metric's names (its registry names, classes, option and result-field names) may appear only
in its own folder `semantic_iqa/metrics/<name>/`, in setup.cfg's entry points, in the lazy
export table of `semantic_iqa/__init__.py`, and in the two shortcut classes kept for DSS-SQA's
users (`DSSSQALoss`, `DSSSQAMetric`). The names are read from the registry, so a new metric's
names are checked too.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from semantic_iqa.registry import list_metrics

PACKAGE = Path(__file__).resolve().parents[1] / "semantic_iqa"
# file -> why it may name a metric
ALLOWED = {
    "__init__.py": "the lazy export table of the public classes",
    "integrations/loss.py": "the DSSSQALoss shortcut, kept for its users",
    "integrations/torchmetrics.py": "the DSSSQAMetric shortcut, kept for its users",
}
# file -> words that mean something else there
OTHER_MEANING = {"hub.py": {"gated"}}  # a Hub repo behind a licence click ("gated repo")


def metric_words() -> set[str]:
    """Every built-in metric's registry name, class name, option names and result-field names."""
    words = set()
    for info in list_metrics():
        words |= {info.name, info.target.partition(":")[2]}
        words |= {option.name for option in info.scoring_options}
        words |= {field.name for field in info.result_fields}
    return words


def code_tokens(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every name and string token of a module (comments and docstrings included:
    a docstring that names a metric is a promise about one metric in shared code)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    kinds = (tokenize.NAME, tokenize.STRING, tokenize.COMMENT)
    return [(tok.start[0], tok.string) for tok in tokens if tok.type in kinds]


def shared_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "metrics" not in p.relative_to(PACKAGE).parts[:1])


def test_the_words_are_read_from_the_registry():
    assert {"dss_sqa", "DSSSQA", "gate", "cos_sim", "mst_clipiqa_prompt", "gate_mean"} <= metric_words()


@pytest.mark.parametrize("path", shared_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_shared_module_names_a_metric(path: Path):
    if str(path.relative_to(PACKAGE)) in ALLOWED:
        return
    words = metric_words() - OTHER_MEANING.get(str(path.relative_to(PACKAGE)), set())
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, words))) + r")\b")
    found = [(line, match.group(0)) for line, text in code_tokens(path) for match in pattern.finditer(text)]
    assert not found, f"{path.relative_to(PACKAGE)} names a metric's {found[:5]} (declare it as data instead)"
