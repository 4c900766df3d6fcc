"""`score-dir --report`: one self-contained HTML page, opened in a real headless Chromium."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semantic_iqa.cli import main
from tests.browser import image_widths
from tests.conftest import EXAMPLES, random_rgb

WORST = 3


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> dict[str, Path]:
    """Five pairs (a photo slightly changed, noise, a different photo) and one undecodable file."""
    root = tmp_path_factory.mktemp("report-job")
    refs, dists = root / "ref", root / "dist"
    refs.mkdir()
    dists.mkdir()
    photo = Image.open(EXAMPLES / "ref.png").convert("RGB").resize((96, 64))
    for index in range(4):
        photo.save(refs / f"pair{index}.png")
    photo.rotate(3).save(dists / "pair0.png")
    Image.fromarray((np.asarray(photo) * 0.7).astype(np.uint8)).save(dists / "pair1.png")
    random_rgb(96, 64, seed=1).save(dists / "pair2.png")
    photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(dists / "pair3.png")
    random_rgb(80, 80, seed=2).save(refs / "broken.png")
    (dists / "broken.png").write_bytes(b"not a png at all")
    out = root / "results.csv"
    report = root / "report.html"
    status = main(
        [
            "score-dir", str(refs), str(dists), "--out", str(out), "--weights", str(tiny_dir), "--workers", "0",
            "--report", str(report), "--report-worst", str(WORST), "--report-method", "occlusion",
        ]
    )  # fmt: skip
    assert status == 1  # the undecodable pair failed; the report is written all the same
    assert report.exists()
    return {"root": root, "refs": refs, "dists": dists, "out": out, "report": report, "weights": tiny_dir}


def result_rows(out: Path) -> list[dict[str, str]]:
    with open(out, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_report_says_what_scored_it_and_that_the_weights_are_random(job):
    page = job["report"].read_text(encoding="utf-8")
    assert "RANDOM WEIGHTS" in page
    assert "DSS-SQA" in page and "dss_sqa" in page
    from semantic_iqa import __version__

    assert __version__ in page
    assert "Score distribution" in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing is fetched


def test_the_worst_pairs_are_explained_worst_first(job):
    rows = [row for row in result_rows(job["out"]) if row["status"] == "ok"]
    worst = [row["id"] for row in sorted(rows, key=lambda row: float(row["score"]))[:WORST]]
    page = job["report"].read_text(encoding="utf-8")
    shown = re.findall(r"alt='explanation of ([^']+)'", page)
    assert shown == worst


def test_gated_and_failed_items_are_listed(job):
    rows = result_rows(job["out"])
    page = job["report"].read_text(encoding="utf-8")
    gated_section = page.split("Pairs the semantic gate vetoed")[1].split("<h2>")[0]
    for row in rows:
        if row["status"] == "ok":
            assert (f"<td>{row['id']}</td>" in gated_section) == (row["gated"] == "True"), row["id"]
    failed_section = page.split("Failed items")[1]
    assert "<td>broken</td>" in failed_section


def test_headless_chromium_loads_every_image(job, tmp_path):
    widths = image_widths(job["report"], tmp_path)
    assert len(widths) == 1 + WORST  # the histogram and one map per explained pair
    assert all(width > 0 for width in widths), widths


def test_an_existing_report_is_not_replaced_without_overwrite(job, tmp_path, capsys):
    report = tmp_path / "report.html"
    report.write_text("a user's file")
    out = tmp_path / "results.csv"
    status = main(
        [
            "score-dir", str(job["refs"]), str(job["dists"]), "--out", str(out), "--weights", str(job["weights"]),
            "--report", str(report),
        ]
    )  # fmt: skip
    assert status == 2
    assert "--overwrite" in capsys.readouterr().err
    assert report.read_text() == "a user's file"
    assert not out.exists()  # refused before any scoring
