"""`score-dir --report`: one self-contained HTML page, opened in a real headless Chromium."""

from __future__ import annotations

import csv
import html
import re
import statistics
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
    """Five pairs (a photo slightly changed, noise, a different photo, the photo itself) and one undecodable file.

    The tiny model's gate vetoes the four changed pairs (CLIP cosines 0.24-0.38) and passes the
    unchanged one (cosine 1), so the gated list must hold some scored pairs and not others."""
    root = tmp_path_factory.mktemp("report-job")
    refs, dists = root / "ref", root / "dist"
    refs.mkdir()
    dists.mkdir()
    photo = Image.open(EXAMPLES / "ref.png").convert("RGB").resize((96, 64))
    for index in range(5):
        photo.save(refs / f"pair{index}.png")
    photo.rotate(3).save(dists / "pair0.png")
    Image.fromarray((np.asarray(photo) * 0.7).astype(np.uint8)).save(dists / "pair1.png")
    random_rgb(96, 64, seed=1).save(dists / "pair2.png")
    photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(dists / "pair3.png")
    photo.save(dists / "pair4.png")
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
    assert {row["gated"] for row in rows if row["status"] == "ok"} == {"True", "False"}  # both kinds to tell apart
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


# -- a result file written by hand, with data that tells a right report from a wrong one ------
# Distinct scores (so worst-first order shows), vetoed and passed pairs mixed at both ends of
# the order, failed rows between them, and an even count of scored rows whose median (mean of
# the two middle scores) differs from the maximum, from either middle score and from the mean.
HAND_ROWS = [  # id, score, cos_sim, gated; None score = a failed row with this error
    ("mid_passed", 2.6, 0.93, False),
    ("low_vetoed", 0.25, 0.21, True),
    ("gone", None, "cannot decode image gone.png: truncated <header> & no IEND", None),
    ("best_passed", 4.7, 0.99, False),
    ("low_passed", 0.8, 0.88, False),
    ("mid_vetoed", 1.9, 0.37, True),
    ("missing", None, "file not found: missing.png (moved?)", None),
    ("high_vetoed", 3.3, 0.12, True),
]
HAND_WORST = 4


def write_hand_results(root: Path, suffix: str) -> Path:
    """The result file of `HAND_ROWS` (small real images, so the worst ones can be explained)."""
    out = root / f"results{suffix}"
    rows = []
    for index, (name, score, cos_or_error, gated) in enumerate(HAND_ROWS):
        ref, dist = root / f"{name}-ref.png", root / f"{name}-dist.png"
        random_rgb(48, 32, seed=2 * index).save(ref)
        random_rgb(48, 32, seed=2 * index + 1).save(dist)
        ok = score is not None
        rows.append(
            {
                "id": name, "ref": str(ref), "dist": str(dist), "score": score,
                "status": "ok" if ok else cos_or_error, "fold_std": 0.01 if ok else None,
                "cos_sim": cos_or_error if ok else None, "gated": gated,
            }
        )  # fmt: skip
    if suffix == ".csv":
        with open(out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def scored_from_file(out: Path) -> list[dict]:
    """The scored rows as the result file says (typed), worst (lowest) first: computed here, not by the report."""
    from semantic_iqa.jobs.report import read_result_rows

    rows = read_result_rows(out, ["id", "score", "status", "gated"])
    return sorted((row for row in rows if row["status"] == "ok"), key=lambda row: row["score"])


def table_rows(section: str) -> list[list[str]]:
    """The cells of every body row (not the <th> header) of the table in `section`, unescaped."""
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)]
    return [[html.unescape(cell) for cell in row] for row in cells if row]


def section_of(page: str, title: str) -> str:
    return page.split(f"<h2>{title}")[1].split("<h2>")[0]


@pytest.fixture(scope="module")
def hand_report(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> dict:
    """`write_report` on the hand-written CSV, recording the figures it draws (to read the histogram's title)."""
    import semantic_iqa.explanation.figure as figure_module
    from semantic_iqa.jobs.report import write_report
    from semantic_iqa.registry import metric_info

    root = tmp_path_factory.mktemp("hand-report")
    out = write_hand_results(root, ".csv")
    figures = []
    real_new_figure = figure_module.new_figure

    def recording_new_figure(*args, **kwargs):
        figures.append(real_new_figure(*args, **kwargs))
        return figures[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figure_module, "new_figure", recording_new_figure)
        report = write_report(
            root / "report.html", out, metric_info("dss_sqa"), tiny_model, {"options": {"gate": "hard"}},
            worst=HAND_WORST, method="occlusion", log=False,
        )  # fmt: skip
    return {"out": out, "page": report.read_text(encoding="utf-8"), "figures": figures}


def histogram_title(figures) -> str:
    titles = [axis.get_title() for figure in figures for axis in figure.axes if "median" in axis.get_title()]
    assert len(titles) == 1, titles
    return titles[0]


def test_hand_report_explains_exactly_the_worst_items_worst_first(hand_report):
    expected = [row["id"] for row in scored_from_file(hand_report["out"])[:HAND_WORST]]
    assert expected == ["low_vetoed", "low_passed", "mid_vetoed", "mid_passed"]  # the data is what it should be
    page = hand_report["page"]
    assert re.findall(r"alt='explanation of ([^']+)'", page) == expected
    facts = re.findall(r"<div class='item'><p><b>([^<]+)</b> \| score ([0-9.]+).*?gate (VETOED|passed)", page)
    by_id = {row["id"]: row for row in scored_from_file(hand_report["out"])}
    assert [name for name, _, _ in facts] == expected
    for name, score, verdict in facts:
        assert float(score) == pytest.approx(by_id[name]["score"], abs=5e-4), name
        assert (verdict == "VETOED") == by_id[name]["gated"], name


def test_hand_report_lists_exactly_the_vetoed_rows_worst_first(hand_report):
    vetoed = [row["id"] for row in scored_from_file(hand_report["out"]) if row["gated"]]
    assert vetoed == ["low_vetoed", "mid_vetoed", "high_vetoed"]
    section = section_of(hand_report["page"], "Pairs the semantic gate vetoed")
    assert section.startswith(" (3)</h2>")
    assert [cells[0] for cells in table_rows(section)] == vetoed


def test_hand_report_lists_failed_rows_with_their_error(hand_report):
    section = section_of(hand_report["page"], "Failed items")
    assert section.startswith(" (2)</h2>")
    listed = {cells[0]: cells[-1] for cells in table_rows(section)}
    errors = {name: error for name, score, error, _ in HAND_ROWS if score is None}
    assert listed == errors
    assert "6 scored, 2 failed" in hand_report["page"]


def test_hand_report_histogram_shows_the_median_of_the_scored_rows(hand_report):
    scores = [row["score"] for row in scored_from_file(hand_report["out"])]
    median = statistics.median(scores)
    assert median == pytest.approx(2.25)  # even count: mean of 1.9 and 2.6; not max, mean or a middle value
    assert histogram_title(hand_report["figures"]).endswith(f"6 items, median {median:.3f}")


def test_parquet_results_give_the_same_lists(tmp_path, tiny_model):
    """Parquet types `gated` and `score` itself; the lists must not depend on the format (no maps: fast)."""
    from semantic_iqa.jobs.report import write_report
    from semantic_iqa.registry import metric_info

    pytest.importorskip("pyarrow")
    out = write_hand_results(tmp_path, ".parquet")
    report = write_report(tmp_path / "r.html", out, metric_info("dss_sqa"), tiny_model, {}, worst=0, log=False)
    page = report.read_text(encoding="utf-8")
    assert [cells[0] for cells in table_rows(section_of(page, "Pairs the semantic gate vetoed"))] == [
        "low_vetoed", "mid_vetoed", "high_vetoed",
    ]  # fmt: skip
    assert [cells[0] for cells in table_rows(section_of(page, "Failed items"))] == ["gone", "missing"]
