"""benchmarks/plots.py on the stored example results (docs/figures/data/benchmark_results.json).

What each check guards against: a random-weights figure that does not say so in its title (or
one that says so when nothing is random), a 2AFC chart without its chance and human reference
lines or with the published figures drawn like ours, a log axis whose labels repeat ("0", "0")
or collide, error bars that are not the recorded spread, a legend over the data, and figures
whose pixel size is not the one chosen for the docs.
"""

from __future__ import annotations

import copy
import json
import struct
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.text import Text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import plots  # noqa: E402

STORED = Path(__file__).resolve().parent.parent / "docs" / "figures" / "data" / "benchmark_results.json"
FIGURES = {
    "lovif": lambda results: plots.plot_lovif_scatter(results, "Train"),
    "bapps": plots.plot_bapps_2afc,
    "throughput": plots.plot_throughput,
}


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads(STORED.read_text(encoding="utf-8"))


def with_random(results: dict, names: set[str]) -> dict:
    """A copy in which exactly the rows `names` (and their speed rows) are flagged random, by the
    flag alone (no note: the note is only the fallback for files from before the flag)."""
    results = copy.deepcopy(results)
    for metric in results["metrics"]:
        metric["random_weights"] = metric["name"] in names
        metric["note"] = ""
    for row in results["speed"]:
        row["random_weights"] = row["metric"].split(",")[0] in names
    return results


def drawn(figure):
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def test_the_stored_example_is_flagged_as_what_it_is(stored):
    flags = {m["name"]: m["random_weights"] for m in stored["metrics"]}
    assert flags == {"DSS-SQA": True, "SSIM": False, "PSNR": False, "LPIPS-VGG": True, "DISTS": True}
    assert all(m["label"].startswith(f"{m['name']} (") for m in stored["metrics"])
    assert "<tmp>" in stored["metrics"][0]["implementation"], "no temporary path of the machine that made it"


def test_plot_all_writes_every_figure_from_the_stored_file(stored, tmp_path):
    written = plots.plot_all(json.loads(json.dumps(stored)), tmp_path / "figures")
    assert sorted(p.name for p in written) == ["bapps_2afc.png", "lovif_Train_scatter.png", "throughput.png"]
    for path in written:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", header[16:24])
        assert width == plots.WIDTH_IN * plots.DPI and 0.3 * width < height < width, path.name


@pytest.mark.parametrize(
    ("random", "expected"),
    [
        (None, True),  # the stored file as it is: tiny DSS-SQA, random LPIPS and DISTS
        (set(), False),
        ({"LPIPS-VGG"}, True),  # a random baseline alone must flag it too
        ({"DSS-SQA"}, True),
    ],
)
def test_title_says_random_weights_exactly_when_a_row_is_random(stored, random, expected):
    results = stored if random is None else with_random(stored, random)
    for name, plot in FIGURES.items():
        figure = plot(results)
        assert ("RANDOM WEIGHTS" in figure.get_suptitle()) is expected, name
        if expected:
            assert plots.RANDOM_TITLE in figure.get_suptitle()


def test_results_files_from_before_the_flag_use_the_note(stored):
    legacy = copy.deepcopy(stored)
    for entry in [*legacy["metrics"], *legacy["speed"]]:
        entry.pop("random_weights")
    assert all("RANDOM WEIGHTS" in plot(legacy).get_suptitle() for plot in FIGURES.values())
    for metric in legacy["metrics"]:
        metric["note"] = ""
    assert not any("RANDOM WEIGHTS" in plot(legacy).get_suptitle() for plot in FIGURES.values())


def test_2afc_has_chance_and_human_lines_and_published_bars_apart(stored):
    figure = plots.plot_bapps_2afc(stored)
    axis = figure.axes[0]
    human = stored["published"]["bapps_human"]["figures"]["overall"]
    assert human == 73.9
    levels = {float(line.get_ydata()[0]): line for line in axis.get_lines() if len(set(line.get_ydata())) == 1}
    assert 50.0 in levels and human in levels
    assert levels[50.0].get_linestyle() == "--" and "chance" in levels[50.0].get_label()
    assert f"human ceiling {human:g} %" in levels[human].get_label()
    hatched = [p for p in axis.patches if p.get_hatch()]
    solid = [p for p in axis.patches if not p.get_hatch()]
    published = stored["published"]["bapps_2afc"]
    assert len(hatched) == sum(len(plots._published_values(e)) for e in published) == 25
    assert len(solid) == len(stored["metrics"]) * (len(plots.BAPPS_SUBSETS) + 1)
    heights = {round(p.get_height(), 6) for p in solid}
    assert round(stored["bapps"]["SSIM"]["traditional"]["2afc"], 6) in heights
    assert round(stored["bapps"]["DSS-SQA"][plots.OVERALL]["2afc"], 6) in heights
    assert {round(p.get_height(), 6) for p in hatched} >= {58.1, 71.4, 74.9, 73.9, 65.0}


def test_legends_do_not_cover_the_data_and_text_is_legible(stored):
    for name, plot in FIGURES.items():
        figure = plot(stored)
        renderer = drawn(figure)
        for legend in figure.legends + [a.get_legend() for a in figure.axes if a.get_legend()]:
            for axis in figure.axes:
                if axis.get_visible():
                    assert not legend.get_window_extent(renderer).overlaps(axis.get_window_extent(renderer)), name
        for text in figure.findobj(Text):
            if text.get_text() and text.get_visible():
                assert text.get_fontsize() >= 8, (name, text.get_text())


def tick_labels(axis, renderer, which: str = "major"):
    ticks = axis.yaxis.get_major_ticks() if which == "major" else axis.yaxis.get_minor_ticks()
    low, high = axis.get_ylim()
    return [t.label1 for t in ticks if low <= t.get_loc() <= high and t.label1.get_visible()]


def speed_results(values: dict[str, list[float]]) -> dict:
    """Results with only speed rows: one metric per key, pairs/s at batch 1, 2, 4, ..."""
    rows = []
    for name, medians in values.items():
        for index, median in enumerate(medians):
            rows.append(
                {
                    "metric": name,
                    "batch": 2**index,
                    "size": 224,
                    "samples": 7,
                    "pairs_per_s": median,
                    "pairs_per_s_q1": median * 0.9,
                    "pairs_per_s_q3": median * 1.1,
                }
            )
    metrics = [{"name": n, "note": ""} for n in values]
    return {"metrics": metrics, "speed": rows, "environment": {"device": "cpu"}}


@pytest.mark.parametrize(
    "values",
    [
        None,  # the stored file
        {"slow": [0.03, 0.05, 0.06], "fast": [20_000.0, 40_000.0, 55_000.0]},  # six decades
        {"a": [0.031, 0.04], "b": [0.05, 0.3]},  # below 1: '{:.0f}' would print 0, 0, 0
        {"a": [120.0, 140.0], "b": [150.0, 180.0]},  # narrower than one 1-2-5 step
    ],
)
def test_throughput_ticks_are_distinct_readable_and_apart(stored, values):
    results = stored if values is None else speed_results(values)
    figure = plots.plot_throughput(results)
    axis = figure.axes[0]
    renderer = drawn(figure)
    assert axis.get_yscale() == "log"
    labels = tick_labels(axis, renderer)
    texts = [label.get_text() for label in labels]
    assert 2 <= len(texts) <= 9, texts
    assert all(texts) and len(set(texts)) == len(texts), texts
    assert not any("e" in t or "$" in t for t in texts), f"plain numbers, no exponents: {texts}"
    boxes = sorted((label.get_window_extent(renderer) for label in labels), key=lambda b: b.y0)
    assert all(lower.y1 <= upper.y0 for lower, upper in zip(boxes, boxes[1:], strict=False)), texts
    assert not any(label.get_text() for label in tick_labels(axis, renderer, "minor")), "minor labels are off"
    x_texts = [t.label1.get_text() for t in axis.xaxis.get_major_ticks() if t.label1.get_visible()]
    batches = sorted({r["batch"] for r in results["speed"]})
    assert x_texts == [str(b) for b in batches]


def test_throughput_error_bars_are_the_recorded_interquartile_range(stored):
    figure = plots.plot_throughput(stored)
    containers = [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    names = list(dict.fromkeys(r["metric"] for r in stored["speed"]))
    assert len(containers) == len(names)
    for container, name in zip(containers, names, strict=True):
        rows = sorted((r for r in stored["speed"] if r["metric"] == name), key=lambda r: r["batch"])
        segments = container.lines[2][0].get_segments()
        drawn_ranges = [value for s in segments for value in (s[0][1], s[1][1])]
        assert drawn_ranges == pytest.approx([v for r in rows for v in (r["pairs_per_s_q1"], r["pairs_per_s_q3"])])
        assert any(r["pairs_per_s_q3"] > r["pairs_per_s_q1"] for r in rows), "a real spread was recorded"


def test_lovif_scatter_shows_the_predictions_with_units(stored):
    figure = plots.plot_lovif_scatter(stored, "Train")
    split = stored["lovif"]["Train"]
    panels = [a for a in figure.axes if a.get_visible()]
    assert len(panels) == len(split)
    for axis, name in zip(panels, [m["name"] for m in stored["metrics"]], strict=True):
        points = axis.collections[0].get_offsets()
        assert points[:, 1].tolist() == pytest.approx(split[name]["predictions"])
        assert "MOS" in axis.get_xlabel() and "higher = better" in axis.get_ylabel()
    assert "dB" in panels[2].get_ylabel() and "distance" in panels[3].get_ylabel()


def test_agiqa_scatter_flags_a_random_model():
    result = {
        "metric": "MST-CLIPIQA variant A",
        "note": "RANDOM WEIGHTS: plumbing test only, not a figure",
        "images": 3,
        "predictions": [1.0, 2.0, 3.0],
        "mos_quality": {"labels": [1.5, 2.5, 2.0], "srocc": 0.5, "plcc": 0.6},
    }
    assert "RANDOM WEIGHTS" in plots.plot_agiqa_scatter({"agiqa": result}).get_suptitle()
    result["note"] = ""
    assert "RANDOM WEIGHTS" not in plots.plot_agiqa_scatter({"agiqa": result}).get_suptitle()
