"""MST-CLIPIQA's data sets: the AGIQA-3K layout and the reference loader's CSV, every problem at once."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from agiqa_synthetic import HEADER, PROMPTS, make_agiqa, write_rows

from semantic_iqa.errors import DatasetError
from semantic_iqa.metrics.mst_clipiqa.data import read_agiqa


@pytest.fixture(scope="module")
def agiqa(tmp_path_factory, photo) -> Path:
    return make_agiqa(tmp_path_factory.mktemp("agiqa") / "AGIQA-3K", photo)


def test_reads_the_agiqa_layout_with_quoted_prompts(agiqa):
    quality = read_agiqa(agiqa)
    assert len(quality) == 24 and quality.layout == "agiqa-3k" and quality.label_column == "mos_quality"
    assert quality.names[:2] == ["gen0_000.png", "gen1_001.jpg"] and all(p.is_file() for p in quality.paths)
    assert quality.prompts[0] == PROMPTS[0] and '"oil painting",' in quality.prompts[0]  # commas and quotes kept
    assert '"' in (agiqa / "data.csv").read_text().splitlines()[1][:20], "the prompt is quoted in the file"
    with open(agiqa / "data.csv", newline="") as handle:
        written = [float(row["mos_align"]) for row in csv.DictReader(handle)]
    align = read_agiqa(agiqa, "mos_align", need_prompts=True)
    assert align.mos.dtype == np.float64 and align.mos.tolist() == written and align.labels == "mos_align"
    assert not np.array_equal(align.mos, quality.mos)


def test_reads_the_reference_loader_csv_with_images_in_a_subfolder(agiqa, tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("gen0_000.png", "gen1_001.jpg"):
        shutil.copy(agiqa / name, tmp_path / "images" / name)
    write_rows(
        tmp_path / "train.csv",
        ["image_name", "prompt", "mos"],
        [["gen0_000.png", "a, b", 3.5], ["gen1_001.jpg", "c", 1]],
    )
    data = read_agiqa(tmp_path, "mos_align")
    assert data.layout == "reference" and data.label_column == "mos" and data.labels == "mos_align"
    assert data.paths == [tmp_path / "images" / "gen0_000.png", tmp_path / "images" / "gen1_001.jpg"]
    assert data.prompts == ["a, b", "c"] and data.mos.tolist() == [3.5, 1.0]


def test_every_problem_of_a_data_set_is_listed_at_once(agiqa, tmp_path):
    for name in ("gen0_000.png", "gen1_001.jpg", "gen2_002.png"):
        shutil.copy(agiqa / name, tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    row = lambda name, prompt, quality: [name, prompt, "", "", "photo", quality, 0.5, 2.0, 0.5]  # noqa: E731
    write_rows(
        tmp_path / "data.csv",
        HEADER,
        [
            row("gen0_000.png", 'a, quoted "prompt"', 3.0),
            row("gen1_001.jpg", "x", "abc"),  # line 3: not a number
            row("gen2_002.png", "   ", 5.5),  # line 4: out of range, empty prompt
            row("gen0_000.png", "y", 2.0),  # line 5: listed again
            row("missing.jpg", "z", 1.0),  # line 6: no such file
            row("broken.png", "w", 1.0),  # line 7: unreadable
        ],
    )
    with pytest.raises(DatasetError) as caught:
        read_agiqa(tmp_path, "mos_quality", need_prompts=True)
    message = str(caught.value)
    assert message.startswith("6 problem(s)"), message
    for expected in (
        "line 3: mos_quality 'abc' is not a number",
        "line 4: mos_quality 5.5 is outside [0, 5]",
        "line 4: empty prompt",
        "line 5: gen0_000.png is listed again (first on line 2)",
        "line 6: missing.jpg is missing",
        "line 7: broken.png cannot be read",
    ):
        assert expected in message
    with pytest.raises(DatasetError, match=r"^5 problem\(s\)"):  # a blank prompt is fine for variant A
        read_agiqa(tmp_path, "mos_quality")


def test_layout_column_and_label_problems(tmp_path):
    write_rows(tmp_path / "data.csv", ["name", "adj1", "mos_quality"], [["a.png", "", 3]])
    with pytest.raises(DatasetError) as caught:
        read_agiqa(tmp_path, "mos_align", need_prompts=True)
    assert "lacks the column(s) mos_align, prompt" in str(caught.value)
    with pytest.raises(DatasetError, match="unknown label column 'beauty'"):
        read_agiqa(tmp_path, "beauty")
    write_rows(tmp_path / "data.csv", ["file", "score"], [["a.png", 3]])
    with pytest.raises(DatasetError, match=r"1 problem\(s\).*neither known layout"):
        read_agiqa(tmp_path)
    (tmp_path / "data.csv").unlink()
    write_rows(tmp_path / "one.csv", ["x"], [])
    write_rows(tmp_path / "two.csv", ["x"], [])
    with pytest.raises(DatasetError, match="found one.csv, two.csv"):
        read_agiqa(tmp_path)
