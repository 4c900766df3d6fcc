"""The report page part by part: header, histogram, lists, item facts, the file itself.

Each test writes its own small report (no module fixture), with data whose right and wrong pages
differ: distinct scores, vetoed rows at both ends of the order, a failed row, more rows than a list
shows. Most use `worst=0` (no maps: fast); the item tests explain two pairs. tests/test_report.py
covers the job that writes the report and a real browser opening it.
"""

from __future__ import annotations

import csv
import html
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.colors import to_rgba

from semantic_iqa.errors import InvalidOptionError
from semantic_iqa.jobs.report import GENERATOR, LISTED_ROWS, is_report, require_matplotlib, write_report
from semantic_iqa.registry import metric_info
from tests.conftest import random_rgb

DSS = metric_info("dss_sqa")
VETOED = "Pairs the semantic gate vetoed"
# id, score, status, fold_std, cos_sim, gated: the vetoed rows are the best and the worst scored
ROWS = [
    ("mid_passed", 3.5, "ok", 0.02, 0.91, False),
    ("worst_vetoed", 1.25, "ok", 0.5, 0.2, True),
    ("failed", None, "cannot decode failed.png", None, None, None),
    ("best_vetoed", 4.75, "ok", 0.01, 0.3, True),
    ("low_passed", 2.0, "ok", 0.1, 0.95, False),
]


def write_rows(root: Path, rows: list[tuple], images: bool = False) -> Path:
    """A CSV result of `rows`; with `images`, a small real pair per row (for the maps)."""
    out = root / "results.csv"
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "ref", "dist", "score", "status", "fold_std", "cos_sim", "gated"])
        for index, (name, score, status, fold_std, cos, gated) in enumerate(rows):
            ref, dist = root / f"{name}-ref.png", root / f"{name}-dist.png"
            if images:
                random_rgb(48, 32, seed=2 * index).save(ref)
                random_rgb(48, 32, seed=2 * index + 1).save(dist)
            writer.writerow([name, ref, dist, *("" if value is None else value for value in (score, status))]
                            + ["" if value is None else value for value in (fold_std, cos, gated)])  # fmt: skip
    return out


def report(root: Path, model, rows=ROWS, info=DSS, summary=None, **options) -> str:
    options.setdefault("worst", 0)
    path = write_report(root / "report.html", write_rows(root, rows), info, model, summary or {}, log=False, **options)
    return path.read_text(encoding="utf-8")


def settings(page: str) -> dict[str, str]:
    """The header table: setting -> value (unescaped)."""
    head = page.split("<h2>")[0]
    return {k: html.unescape(v) for k, v in re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", head)}


def listed(page: str, title: str) -> tuple[str, list[dict[str, str]]]:
    """(the heading's count part, the rows as column -> cell) of the list titled `title`."""
    section = page.split(f"<h2>{title}")[1].split("<h2>")[0]
    names = [html.unescape(name) for name in re.findall(r"<th>(.*?)</th>", section)]
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", section)]
    return section.split("</h2>")[0], [dict(zip(names, map(html.unescape, row), strict=True)) for row in rows if row]


@pytest.fixture
def figures(monkeypatch) -> list:
    """Every matplotlib figure the report draws (to read the histogram's axes)."""
    import semantic_iqa.explanation.figure as figure_module

    drawn, real = [], figure_module.new_figure
    monkeypatch.setattr(figure_module, "new_figure", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    return drawn


def test_the_header_states_every_setting(tmp_path, tiny_model):
    summary = {
        "weights": "my/weights", "revision": "r1", "options": {"gate": "soft", "batch": 4}, "package_version": "1.2.3",
        "engine": "local", "out": "res.csv", "mean_score": 2.875, "wall_time_s": 12.34,
    }  # fmt: skip
    page = report(tmp_path, tiny_model, summary=summary)
    table = settings(page)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ?\S*", table.pop("written"))  # when it was written
    assert table == {
        "metric": "DSS-SQA (dss_sqa)", "scores": "0 to 5, higher is better", "weights": "my/weights",
        "revision": "r1", "options": "gate=soft, batch=4", "semantic-iqa": "1.2.3", "engine": "local",
        "result file": "res.csv", "items": "4 scored, 1 failed", "mean score": "2.875", "wall time": "12.3 s",
    }  # fmt: skip
    assert page.startswith("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>")
    assert "<title>DSS-SQA report</title>" in page and "</table>\n<h2>Score distribution</h2>" in page
    assert (
        "<h1>DSS-SQA: scoring report</h1><p class='warning'>RANDOM WEIGHTS: this model has random (tiny or test) "
        "weights. Its scores and maps check the plumbing only and mean nothing.</p><table>"
    ) in page
    assert is_report(tmp_path / "report.html")


def test_an_empty_summary_shows_the_defaults(tmp_path, tiny_model):
    table = settings(report(tmp_path, tiny_model, info=replace(DSS, score_range=(0.0, None))))
    assert table["weights"] == "(default)" and table["options"] == "(defaults)" and table["wall time"] == "0.0 s"
    assert table["scores"] == "unbounded, higher is better"
    assert not {"revision", "mean score", "engine", "semantic-iqa", "result file"} & table.keys()


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_worst_first_follows_the_metrics_direction(tmp_path, tiny_model, figures, higher_is_better):
    info = replace(DSS, higher_is_better=higher_is_better)
    page = report(tmp_path, tiny_model, info=info, worst=2)  # no image files: each item says why it has no map
    count, rows = listed(page, VETOED)
    worst_first = ["worst_vetoed", "best_vetoed"] if higher_is_better else ["best_vetoed", "worst_vetoed"]
    assert count == " (2)" and [row["id"] for row in rows] == worst_first
    direction = "higher is better" if higher_is_better else "lower is better"
    assert settings(page)["scores"].endswith(direction)
    assert figures[0].axes[0].get_xlabel() == f"DSS-SQA score ({direction})"
    end = "lowest" if higher_is_better else "highest"
    # Red = the region made the score worse: lowered it, or raised it for a lower-is-better metric.
    worse, improve, improved = ("lowered", "raise", "raised") if higher_is_better else ("raised", "lower", "lowered")
    assert (
        f"<h2>{end.capitalize()} scores, and where the score was lost</h2><p class='muted'>The 2 {end}-scoring of "
        f"4 items ({direction}), worst first. Red in a map: the region {worse} the score (restoring it would {improve} "
        f"it); blue: it {improved} the score. Maps are computed through the metric itself (see the explain docs).</p>"
        "<div class='item'><p><b>" + ("worst_vetoed" if higher_is_better else "best_vetoed")
    ) in page
    assert page.count("</div><div class='item'>") == 1  # the two items, one after the other


def test_the_lists_show_typed_cells_and_the_failed_rows(tmp_path, tiny_model):
    page = report(tmp_path, tiny_model)
    assert re.search(r"<img alt='histogram of scores' src='[^']+'>\n\n<h2>" + VETOED, page)  # worst=0: no section
    cells = r"(<td>[^<]*</td>)+"  # the two vetoed rows, cell after cell
    assert re.search(rf"<table><tr>(<th>\w+</th>)+</tr><tr>{cells}</tr><tr>{cells}</tr></table>", page)
    vetoed = {row["id"]: row for row in listed(page, VETOED)[1]}
    assert vetoed["worst_vetoed"]["score"] == "1.250" and vetoed["worst_vetoed"]["cos_sim"] == "0.200"
    assert vetoed["worst_vetoed"]["ref"] == str(tmp_path / "worst_vetoed-ref.png")
    count, failed = listed(page, "Failed items")
    assert count == " (1)" and failed == [
        {"id": "failed", "ref": str(tmp_path / "failed-ref.png"), "dist": str(tmp_path / "failed-dist.png"),
         "status": "cannot decode failed.png"}
    ]  # fmt: skip


def test_file_names_that_look_like_numbers_stay_text(tmp_path, tiny_model):
    out = tmp_path / "results.csv"
    out.write_text("id,ref,dist,score,status\n7,0001,2.50,,file not found: 0001\n", encoding="utf-8")
    page = write_report(tmp_path / "r.html", out, DSS, tiny_model, {}, worst=0, log=False).read_text(encoding="utf-8")
    assert listed(page, "Failed items")[1] == [
        {"id": "7", "ref": "0001", "dist": "2.50", "status": "file not found: 0001"}
    ]


def test_a_row_marked_ok_without_a_score_is_neither_scored_nor_failed(tmp_path, tiny_model):
    rows = [*ROWS, ("damaged", None, "ok", None, None, None)]
    page = report(tmp_path, tiny_model, rows=rows)
    assert settings(page)["items"] == "4 scored, 1 failed"
    assert "damaged" not in page.split("<h2>Failed items")[1]


@pytest.mark.parametrize(("count", "bars"), [(4, 5), (60, 20), (150, 40)])
def test_the_histogram_title_median_and_bins(tmp_path, tiny_model, figures, count, bars):
    # bins = clamp(count // 3, 5, 40); the median of an even count is the mean of the middle two.
    rows = [(f"p{i}", 0.03 * i + (i % 2), "ok", 0.0, 0.9, False) for i in range(count)]
    scores = sorted(row[1] for row in rows)
    median = (scores[count // 2 - 1] + scores[count // 2]) / 2
    report(tmp_path, tiny_model, rows=rows)
    (axis,) = figures[0].axes
    assert axis.get_title() == f"RANDOM WEIGHTS - {count} items, median {median:.3f}"
    assert len(axis.patches) == bars
    assert tuple(figures[0].get_size_inches()) == (7.5, 3.0)
    assert axis.patches[0].get_facecolor() == to_rgba("#4477aa")
    assert axis.get_ylabel() == "items"


def test_no_scored_item_means_no_histogram(tmp_path, tiny_model):
    page = report(tmp_path, tiny_model, rows=[ROWS[2]])
    assert "<h2>Score distribution</h2><p>No item was scored.</p>" in page
    assert settings(page)["items"] == "0 scored, 1 failed"


@pytest.mark.parametrize("failures", [LISTED_ROWS, LISTED_ROWS + 3])
def test_long_lists_are_cut_and_say_how_many_more(tmp_path, tiny_model, failures):
    rows = [(f"f{i:03d}", None, "error", None, None, None) for i in range(failures)]
    page = report(tmp_path, tiny_model, rows=rows)
    count, listed_rows = listed(page, "Failed items")
    assert count == f" ({failures})" and len(listed_rows) == LISTED_ROWS == 200
    more = f"<p class='muted'>... and {failures - LISTED_ROWS} more (see the result file).</p>"
    assert (more in page) == (failures > LISTED_ROWS)


def test_items_state_their_figures_and_a_missing_image_says_why(tmp_path, tiny_model, capsys):
    out = write_rows(tmp_path, ROWS, images=True)
    (tmp_path / "worst_vetoed-dist.png").unlink()  # the worst can no longer be explained; the next one still is
    kwargs = {"worst": 2, "method": "gradients"}
    page = write_report(tmp_path / "off.html", out, DSS, tiny_model, {"options": {"gate": "off"}}, **kwargs)
    page = page.read_text(encoding="utf-8")
    assert re.search(r"The 2 lowest-scoring of 4 items", page)
    missing, second = page.split("<div class='item'>")[1:]
    assert re.search(r"<b>worst_vetoed</b> \| score 1\.250 \| fold spread ±?0\.500 \| cos 0\.20\d?", missing)
    assert "gate VETOED" in missing and "<img" not in missing
    assert re.search(r"<p class='warning'>no map: .*worst_vetoed-dist\.png", missing)
    assert re.search(r"<b>low_passed</b> \| score 2\.000 \| fold spread ±?0\.100 \| cos 0\.95\d?", second)
    assert "gate passed" in second
    ref, dist = (html.escape(str(tmp_path / f"low_passed-{side}.png")) for side in ("ref", "dist"))
    assert f"ref: <code>{ref}</code><br>dist: <code>{dist}</code>" in second
    assert "<img alt='explanation of low_passed' src='data:image/png;base64," in second
    logged = re.findall(r"report: explained (\d+)/(\d+) \((\w+)\) in (\d+\.\d) s", capsys.readouterr().err)
    assert [line[:3] for line in logged] == [("2", "2", "low_passed")] and float(logged[0][3]) < 600
    # The job's gate reaches the explanation: its map (and the score drawn on it) changes with it.
    # (method "auto", the default: gradients on a CPU)
    hard = write_report(tmp_path / "hard.html", out, DSS, tiny_model, {"options": {"gate": "hard"}}, worst=2,
                        log=False).read_text(encoding="utf-8")  # fmt: skip
    assert "<img alt='explanation of low_passed'" in hard
    image = re.compile(r"src='(data:image/png;base64,[^']+)'")
    assert image.findall(second)[0] != image.findall(hard.split("<div class='item'>")[2])[0]


def test_a_report_needs_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what Python does for a package that is not installed
    with pytest.raises(InvalidOptionError) as error:
        require_matplotlib()
    assert str(error.value) == "--report needs matplotlib: pip install 'semantic-iqa[viz]'"


def test_the_page_is_written_whole_into_a_new_folder_and_known_as_a_report(tmp_path, tiny_model):
    target = tmp_path / "new" / "folder" / "report.html"
    write_report(target, write_rows(tmp_path, ROWS), DSS, tiny_model, {}, worst=0, log=False)
    assert [path.name for path in target.parent.iterdir()] == ["report.html"]  # no staging file left
    assert is_report(target)
    (tmp_path / "mine.html").write_text("<html>a user's page</html>")
    assert not is_report(tmp_path / "mine.html") and not is_report(tmp_path / "absent.html")
    (tmp_path / "binary.html").write_bytes(b"\xff\xfe\x00 not text " * 10)
    assert not is_report(tmp_path / "binary.html")
    # only the head is read: a page that quotes the tag far down its body is not one of ours
    (tmp_path / "quotes.html").write_text("<html><body>" + "x" * 5000 + GENERATOR + "</body></html>")
    assert not is_report(tmp_path / "quotes.html")
