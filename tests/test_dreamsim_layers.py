"""DreamSim through the layers that know no metric, LOWER = more similar respected in each: the Python
API, `score` (+ `--json | jq`, exit codes), `score-dir` (CSV, Parquet, `--report` worst = LARGEST
distance first), the Ray engine, `explain` (positive = where the distance grew), `make-tiny`,
`metrics`, `info`, and `download` then offline from the Hub stand-in (tests/fake_hub.py).

The tiny ensemble has random weights: every number here checks plumbing, not accuracy.
pyiqa, torchmetrics and the losses: tests/test_dreamsim_adapters.py; the model: tests/test_dreamsim.py.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import offline_env
from dreamsim_testing import CLI, PAIRS, cli, one_line_error, reference_image
from fake_hub import FakeHub
from PIL import Image

import semantic_iqa
from semantic_iqa.explanation import explain
from semantic_iqa.explanation.attribution import grid_cells
from semantic_iqa.metrics.dreamsim.tiny import build_tiny

pytest_plugins = ["dreamsim_testing"]  # fixtures: dreamsim_dir, dreamsim, pair_dirs, expected, pair_batches

JOB_COLUMNS = ["id", "ref", "dist", "score", "status", "input_signature"]  # `score` is DreamSim's only figure


def files(pair_dirs: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    return pair_dirs[0] / f"{name}.png", pair_dirs[1] / f"{name}.png"


# -- the Python API and `score` -------------------------------------------------------------------


def test_score_and_score_details(dreamsim_dir, pair_dirs, expected):
    ref, dist = files(pair_dirs, "p3")
    assert semantic_iqa.score(ref, dist, metric="dreamsim", weights=dreamsim_dir) == pytest.approx(
        expected["p3"], abs=1e-6
    )
    refs, dists = ([folder / f"{name}.png" for name in PAIRS] for folder in pair_dirs)
    batch = semantic_iqa.score(refs, dists, metric="dreamsim", weights=dreamsim_dir)
    torch.testing.assert_close(batch, torch.tensor([expected[name] for name in PAIRS]), rtol=0, atol=1e-6)
    details = semantic_iqa.score_details(ref, dist, metric="dreamsim", weights=dreamsim_dir)
    assert details.metric == "dreamsim" and details.as_dict() == {"score": pytest.approx(expected["p3"], abs=1e-6)}


def test_score_prints_the_distance_and_bad_calls_are_one_line(dreamsim_dir, pair_dirs, expected, capsys):
    common = ["--metric", "dreamsim", "--weights", dreamsim_dir, "--device", "cpu"]
    status, out, err = cli(capsys, "score", *files(pair_dirs, "p1"), *common)
    assert status == 0 and float(out) == pytest.approx(expected["p1"], abs=6e-5), err  # printed to 4 places
    status, out, err = cli(capsys, "score", files(pair_dirs, "p1")[0], *common)
    assert status == 2 and out == "" and "dreamsim is full-reference: give REF DIST" in one_line_error(err)
    status, _, err = cli(capsys, "score", *files(pair_dirs, "p1"), *common, "--gate", "soft")
    assert status == 2 and "--gate is a dss_sqa option; dreamsim has no gate mode" in one_line_error(err)
    status, _, err = cli(capsys, "score", *files(pair_dirs, "p1"), "--weights", dreamsim_dir)  # the default metric
    assert status == 2 and "holds 'dreamsim' weights, not 'dss_sqa'" in one_line_error(err)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_score_json_pipes_into_jq(dreamsim_dir, pair_dirs, expected, tmp_path):
    ref, dist = files(pair_dirs, "p4")
    command = f"'{CLI}' score '{ref}' '{dist}' --metric dreamsim --weights '{dreamsim_dir}' --device cpu --json"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} | jq -c '{{metric, ref, dist, score}}'"],
        capture_output=True, text=True, cwd=tmp_path, env=offline_env(tmp_path / "hub", OMP_NUM_THREADS="1"),
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record == {"metric": "dreamsim", "ref": str(ref), "dist": str(dist), "score": pytest.approx(expected["p4"])}


# -- score-dir: its files and the report --------------------------------------------------------


class ReportPage(HTMLParser):
    """What a reader of the report sees: the headings, the settings table, the paragraphs, the maps' order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.settings: dict[str, str] = {}
        self.paragraphs: list[str] = []
        self.explained: list[str] = []
        self._open: str | None = None
        self._text: list[str] = []
        self._row_key: str | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        alt = dict(attrs).get("alt") or ""
        if tag == "img" and alt.startswith("explanation of "):
            self.explained.append(alt.removeprefix("explanation of "))
        if tag in ("h2", "p", "th", "td"):
            self._open, self._text = tag, []

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag != self._open:
            return
        text, self._open = "".join(self._text), None
        if tag == "h2":
            self.headings.append(text)
        elif tag == "p":
            self.paragraphs.append(text)
        elif tag == "th":
            self._row_key = text
        elif self._row_key is not None:
            self.settings[self._row_key], self._row_key = text, None


def test_score_dir_writes_the_distances_and_reports_the_largest_first(
    dreamsim_dir, pair_dirs, expected, tmp_path, capsys
):
    out, report = tmp_path / "results.csv", tmp_path / "report.html"
    command = ["score-dir", "--metric", "dreamsim", *pair_dirs, "--out", out, "--weights", dreamsim_dir]
    command += ["--device", "cpu", "--workers", 0, "--batch-size", 2]
    status, _, err = cli(capsys, *command, "--report", report, "--report-worst", 3, "--report-method", "occlusion")
    assert status == 0, err
    assert "report: explaining the 3 highest-scoring item(s)" in err  # the worst of a distance: the highest
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == JOB_COLUMNS and {row["status"] for row in rows} == {"ok"}
    assert {row["id"]: float(row["score"]) for row in rows} == pytest.approx(expected, abs=1e-6)

    page = ReportPage(report.read_text(encoding="utf-8"))
    assert page.explained == ["p4", "p3", "p2"]  # lower is better: the largest distances, largest first
    assert page.settings["scores"] == "0 to 2, lower is better" and page.settings["metric"] == "DreamSim (dreamsim)"
    assert "Highest scores, and where the score was lost" in page.headings
    (intro,) = [text for text in page.paragraphs if text.startswith("The 3 highest-scoring of 5 items")]
    assert "(lower is better), worst first" in intro
    assert "Red in a map: the region raised the score (restoring it would lower it); blue: it lowered" in intro
    assert any(text.startswith("RANDOM WEIGHTS") for text in page.paragraphs)

    parquet = tmp_path / "results.parquet"
    status, _, err = cli(capsys, *command[:-4], "--out", parquet, *command[-4:])
    assert status == 0, err
    table = pytest.importorskip("pyarrow.parquet").read_table(parquet).to_pylist()
    assert list(table[0]) == JOB_COLUMNS
    assert {row["id"]: row["score"] for row in table} == pytest.approx(expected, abs=1e-6)


RAY_JOB = """
import json, sys
from semantic_iqa.cli import main
from semantic_iqa.ray import init_local_ray
init_local_ray(num_cpus=2)
sys.exit(main(json.loads(sys.argv[1])))
"""


def test_the_ray_engine_gives_the_local_distances(dreamsim_dir, pair_dirs, expected, tmp_path):
    pytest.importorskip("ray.data", reason="the Ray engine needs the [ray] extra")
    out = tmp_path / "ray.csv"
    argv = ["score-dir", "--metric", "dreamsim", *map(str, pair_dirs), "--out", str(out), "--engine", "ray",
            "--weights", str(dreamsim_dir), "--device", "cpu", "--batch-size", "2"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", RAY_JOB, json.dumps(argv)], capture_output=True, text=True,
        env=offline_env(tmp_path / "hub", OMP_NUM_THREADS="1"), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == JOB_COLUMNS and {row["status"] for row in rows} == {"ok"}
    assert {row["id"]: float(row["score"]) for row in rows} == pytest.approx(expected, abs=1e-5)


# -- explain: a distortion confined to the right half ----------------------------------------------

HEIGHT, WIDTH = 120, 160  # not square, not 224: the map is at the image's size, the metric works at 224 x 224
RIGHT = (slice(None), slice(WIDTH // 2, None))


@pytest.fixture(scope="module")
def half_distorted(tmp_path_factory) -> tuple[Path, Path]:
    """A photograph and the same with noise added to its right half only."""
    root = tmp_path_factory.mktemp("half")
    ref = reference_image().resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    pixels = np.asarray(ref).astype(np.float64)
    pixels[RIGHT] += np.random.default_rng(1).normal(0, 60, size=pixels[RIGHT].shape)
    ref.save(root / "ref.png")
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / "dist.png")
    return root / "ref.png", root / "dist.png"


def test_explain_maps_where_the_distance_grew(dreamsim_dir, half_distorted, tmp_path, capsys):
    """docs/explain.md: positive = the region made the score worse (for a distance: raised it); the
    gradient map sums to score(ref, ref) - score(ref, dist) in "better" units, i.e. + the distance."""
    figure = tmp_path / "map.png"
    status, out, err = cli(
        capsys, "explain", *half_distorted, "--metric", "dreamsim", "--out", figure, "--weights", dreamsim_dir,
        "--device", "cpu", "--method", "gradients", "--steps", 16, "--json",
    )  # fmt: skip
    assert status == 0, err
    summary = json.loads(out)
    distance = semantic_iqa.score(*half_distorted, metric="dreamsim", weights=dreamsim_dir)
    assert summary["score"] == pytest.approx(distance, abs=1e-6) and distance > 0.01
    assert summary["settings"]["resolution"] == "224x224" and summary["random_weights"] is True
    heat = np.load(figure.with_suffix(".npy"))
    assert heat.shape == (HEIGHT, WIDTH) and figure.exists()
    assert not heat[:, : WIDTH // 2].any(), "the left half equals the reference: exactly 0"
    assert heat.sum() == pytest.approx(distance, rel=0.05)  # completeness, with the sign of "worse" (measured 1 %)


def test_an_occlusion_cell_holds_the_distance_that_restoring_it_removes(dreamsim, half_distorted):
    ref, dist = (Image.open(path).convert("RGB") for path in half_distorted)
    result = explain(ref, dist, metric="dreamsim", model=dreamsim, method="occlusion", grid=4)
    assert result.heat.shape == (HEIGHT, WIDTH) and result.settings["resolution"] == "224x224"
    assert result.heat.sum() > 0 and not result.heat[:, : WIDTH // 2].any()
    rows, cols = list(grid_cells(HEIGHT, WIDTH, 4))[3]  # top right
    restored = np.asarray(dist).copy()
    restored[rows, cols] = np.asarray(ref)[rows, cols]
    removed = result.score - float(dreamsim.predict(ref, Image.fromarray(restored)).score)
    area = (rows.stop - rows.start) * (cols.stop - cols.start)
    assert abs(removed) > 1e-4  # the cell matters, so the sign below is a check
    np.testing.assert_allclose(result.heat[rows, cols], removed / area, rtol=0, atol=2e-6)  # + = distance removed


# -- make-tiny, metrics, info, download and offline ----------------------------------------------


def test_make_tiny_metrics_and_info(tmp_path, capsys):
    status, out, err = cli(capsys, "make-tiny", tmp_path / "tiny", "--metric", "dreamsim", "--seed", 3)
    assert status == 0, err
    made = semantic_iqa.create_metric("dreamsim", weights=out.strip(), device="cpu")
    same, other = build_tiny(seed=3).state_dict(), build_tiny(seed=4).state_dict()
    assert list(made.state_dict()) == list(same)
    assert all(torch.equal(value, same[key]) for key, value in made.state_dict().items())
    differ = [key for key, value in made.state_dict().items() if not torch.equal(value, other[key])]
    assert len(differ) > 20, "the seed must matter, or equality proves nothing"  # every random tensor
    status, out, _ = cli(capsys, "metrics", "--verbose")
    lines = out.splitlines()
    (line,) = [text for text in lines if text.startswith("dreamsim ")]
    assert "FR  [0, 2], lower is better" in line and lines[lines.index(line) + 1].strip() == "inputs: ref, dist"
    status, out, _ = cli(capsys, "info", tmp_path / "tiny")
    assert status == 0 and "(dreamsim: full reference, lower is better)" in out.splitlines()[0]
    assert out.count("  ok\n") == 6 and "open_clip backbone vit_base_patch16_clip_224 (tiny, random)" in out


OFFLINE_SCORE = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network disabled by the test")
socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse
import json, sys, semantic_iqa
from semantic_iqa.cli import main
metric = semantic_iqa.create_metric("dreamsim", weights="org/dreamsim-tiny", device="cpu")
print("SCORE", json.dumps(metric.predict(sys.argv[1], sys.argv[2]).score.tolist()))
main(["info", "org/dreamsim-tiny", "--metric", "dreamsim"])
"""


def test_download_then_offline_by_repo_id(dreamsim_dir, pair_dirs, expected, tmp_path):
    cache = tmp_path / "hub"
    with FakeHub() as hub:
        hub.add_folder("org/dreamsim-tiny", dreamsim_dir)
        env = {**offline_env(cache, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1"), "OMP_NUM_THREADS": "1"}
        env.pop("HF_HUB_OFFLINE")
        done = subprocess.run([str(CLI), "download", "org/dreamsim-tiny", "--metric", "dreamsim"], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    moved = Path(shutil.copytree(cache, tmp_path / "elsewhere" / "hub", symlinks=True))  # another machine
    done = subprocess.run([sys.executable, "-c", OFFLINE_SCORE, *map(str, files(pair_dirs, "p2"))], env=offline_env(
        moved, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (scores,) = [json.loads(line[6:]) for line in done.stdout.splitlines() if line.startswith("SCORE ")]
    assert scores == pytest.approx([expected["p2"]], abs=1e-6)
    assert "weights org/dreamsim-tiny: cached, commit" in done.stdout and done.stdout.count("  ok\n") == 6
