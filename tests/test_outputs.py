"""Every output path goes through one check (`semantic_iqa.outputs`): an existing file or foreign folder
is replaced only when asked (`--overwrite`), an input never, not even through a symlink or a hard link.

Each refusal comes before any model work, as one line with status 2, and leaves the bytes as they were.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mst_reference import authors_checkpoint
from PIL import ImageFilter

from semantic_iqa import DSSSQA
from semantic_iqa.cli import main
from semantic_iqa.errors import OutputError, WeightsError, WeightsOutputError
from semantic_iqa.explanation import Explanation
from semantic_iqa.metrics.mst_clipiqa import MSTCLIPIQA
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa
from semantic_iqa.outputs import check_output_file, check_output_folder


@pytest.fixture
def images(tmp_path, photo) -> Path:
    """`imgs/ref.png`, `imgs/dist.png`, `link -> imgs` and a manifest `m.csv` of the pair."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    small = photo.resize((64, 64))
    small.save(folder / "ref.png")
    small.filter(ImageFilter.GaussianBlur(2)).save(folder / "dist.png")
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    (tmp_path / "m.csv").write_text("ref,dist\nimgs/ref.png,imgs/dist.png\n")
    return folder


@pytest.fixture(scope="module")
def mst_b(tmp_path_factory) -> Path:
    """A tiny MST-CLIPIQA variant-B weights folder (another metric than dss_sqa)."""
    return build_random_mst_clipiqa("B", "tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("mst") / "b")


def refused(argv: list[str], capsys, *words: str) -> str:
    """Run the command; it must fail with one line (status 2) naming every one of `words`."""
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert all(word in err[0] for word in words), err[0]
    return err[0]


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def score_dir(tmp_path: Path, weights: Path, *options: str) -> list[str]:
    manifest = ["score-dir", "--manifest", str(tmp_path / "m.csv")]
    return [*manifest, "--weights", str(weights), "--device", "cpu", "--workers", "0", *options]


def test_score_dir_json_never_replaces_an_existing_file_unasked(tiny_dir, images, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text("another job's results")
    argv = score_dir(tmp_path, tiny_dir, "--out", str(tmp_path / "r.csv"), "--json", str(other))
    refused(argv, capsys, "--json", "--overwrite")
    assert other.read_text() == "another job's results" and not (tmp_path / "r.csv").exists()
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads(other.read_text())["ok"] == 1
    capsys.readouterr()
    # The command a resumed job prints repeats --json: its own summary may be replaced.
    assert main([*argv, "--resume"]) == 0


@pytest.mark.parametrize("how", ["symlinked folder", "hard link"])
def test_score_dir_json_never_writes_an_input_image(tiny_dir, images, tmp_path, capsys, how):
    if how == "symlinked folder":  # the manifest names the image through the link; --json its real path
        (tmp_path / "m.csv").write_text("ref,dist\nlink/ref.png,link/dist.png\n")
        target = images / "dist.png"
    else:
        target = tmp_path / "summary.json"
        os.link(images / "dist.png", target)
    before = (images / "dist.png").read_bytes()
    argv = score_dir(tmp_path, tiny_dir, "--out", str(tmp_path / "r.csv"), "--json", str(target), "--overwrite")
    refused(argv, capsys, "--json", "input")
    assert (images / "dist.png").read_bytes() == before and not (tmp_path / "r.csv").exists()


def test_score_dir_out_never_replaces_its_manifest_through_a_hard_link(tiny_dir, images, tmp_path, capsys):
    os.link(tmp_path / "m.csv", tmp_path / "results.csv")
    before = (tmp_path / "m.csv").read_bytes()
    refused(score_dir(tmp_path, tiny_dir, "--out", str(tmp_path / "results.csv"), "--overwrite"), capsys, "input")
    assert (tmp_path / "m.csv").read_bytes() == before


def test_score_dir_report_never_goes_into_the_weights_folder(tiny_dir, images, tmp_path, capsys):
    weights = Path(shutil.copytree(tiny_dir, tmp_path / "weights"))
    (tmp_path / "wlink").symlink_to(weights, target_is_directory=True)
    before = contents(weights)
    argv = score_dir(tmp_path, weights, "--out", str(tmp_path / "r.csv"), "--overwrite")
    refused([*argv, "--report", str(tmp_path / "wlink" / "report.html")], capsys, "--report", "input folder")
    assert contents(weights) == before and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("through", ["imgs", "link"])
def test_explain_never_replaces_its_own_input_image(tiny_dir, images, tmp_path, capsys, through):
    before = (images / "dist.png").read_bytes()
    out = tmp_path / through / "dist.png"
    argv = ["explain", str(images / "ref.png"), str(images / "dist.png"), "--out", str(out), "--overwrite"]
    argv += ["--weights", str(tiny_dir), "--device", "cpu", "--method", "occlusion", "--grid", "2"]
    refused(argv, capsys, "--out", "input")
    assert (images / "dist.png").read_bytes() == before and not (images / "dist.npy").exists()


def test_explain_never_replaces_an_existing_map_unasked(tiny_dir, images, tmp_path, capsys):
    (tmp_path / "fig.npy").write_bytes(b"an older map")
    argv = ["explain", str(images / "ref.png"), str(images / "dist.png"), "--out", str(tmp_path / "fig.png")]
    refused([*argv, "--weights", str(tiny_dir), "--device", "cpu"], capsys, "fig.npy", "--overwrite")
    assert (tmp_path / "fig.npy").read_bytes() == b"an older map" and not (tmp_path / "fig.png").exists()


def test_explanation_save_refuses_inputs_and_existing_files(images, tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    explanation = Explanation(np.zeros((8, 8), np.float32), rgb, None, "mst_clipiqa", "MST", "occlusion", 1.0)
    before = (images / "dist.png").read_bytes()
    with pytest.raises(OutputError, match="input"):
        explanation.save(tmp_path / "link" / "dist.png", overwrite=True, inputs=[images / "dist.png"])
    assert (images / "dist.png").read_bytes() == before
    with pytest.raises(OutputError, match="does not exist"):
        explanation.save(tmp_path / "missing" / "map.png")
    explanation.save(tmp_path / "map.png")
    with pytest.raises(OutputError, match="--overwrite"):
        explanation.save(tmp_path / "map.png")


def test_convert_mst_clipiqa_never_replaces_another_metrics_weights_unasked(tiny_dir, mst_b, tmp_path, capsys):
    checkpoint = tmp_path / "b.pth"
    torch.save(authors_checkpoint("B", seed=0)[0], checkpoint)
    out = Path(shutil.copytree(tiny_dir, tmp_path / "dss"))
    before, mst_before = contents(out), contents(mst_b)
    argv = ["convert-mst-clipiqa", str(checkpoint), "--variant", "B", "--architecture-from", str(mst_b), "--out"]
    refused([*argv, str(out)], capsys, "another metric (dss_sqa)", "--overwrite")
    assert contents(out) == before
    # Its input folder is refused even with --overwrite, though it is a weights folder of the same metric.
    refused([*argv, str(mst_b), "--overwrite"], capsys, "input folder")
    assert contents(mst_b) == mst_before
    assert main([*argv, str(out), "--overwrite"]) == 0
    assert MSTCLIPIQA.from_pretrained(out, device="cpu").config.variant == "B"


def test_convert_siqav3_refuses_before_reading_a_checkpoint(tiny_dir, mst_b, tmp_path, capsys):
    checkpoint = tmp_path / "fold0.pth"
    checkpoint.write_bytes(b"not read: the output is refused first")
    weights = Path(shutil.copytree(tiny_dir, tmp_path / "dss"))
    argv = ["convert-siqav3", str(checkpoint), "--architecture-from", str(weights), "--out"]
    refused([*argv, str(mst_b)], capsys, "another metric (mst_clipiqa)", "--overwrite")
    before = contents(weights)
    refused([*argv, str(weights), "--overwrite"], capsys, "input folder")
    refused([*argv, str(tmp_path), "--overwrite"], capsys, "holds the input")
    assert contents(weights) == before


def test_make_tiny_never_replaces_another_metrics_weights_unasked(mst_b, tmp_path, capsys):
    out = Path(shutil.copytree(mst_b, tmp_path / "mst"))
    before = contents(out)
    refused(["make-tiny", str(out)], capsys, "another metric (mst_clipiqa)", "--overwrite")
    assert contents(out) == before
    assert main(["make-tiny", str(out), "--overwrite"]) == 0
    assert DSSSQA.from_pretrained(out, device="cpu").config.num_folds == 5


def test_train_never_writes_into_its_inputs(tiny_dir, tmp_path, capsys, photo):
    from lovif_synthetic import make_lovif

    pytest.importorskip("openpyxl")
    data = make_lovif(tmp_path / "lovif", photo)
    weights = Path(shutil.copytree(tiny_dir, tmp_path / "weights"))
    before = contents(weights)
    argv = ["train", "--data", str(data), "--backbones-from", str(weights), "--cache", str(tmp_path / "cache")]
    argv += ["--device", "cpu", "--workers", "0", "--overwrite", "--out"]
    refused([*argv, str(weights)], capsys, "input folder")
    refused([*argv, str(data / "weights")], capsys, "input folder")
    assert contents(weights) == before and not (tmp_path / "cache").exists()


def test_save_pretrained_never_replaces_another_metrics_weights_unasked(tiny_model, mst_b, tmp_path):
    out = Path(shutil.copytree(mst_b, tmp_path / "mst"))
    before = contents(out)
    with pytest.raises(WeightsError, match="another metric"):
        tiny_model.save_pretrained(out)
    assert contents(out) == before
    tiny_model.save_pretrained(out, overwrite=True)
    assert DSSSQA.from_pretrained(out, device="cpu").config.num_folds == tiny_model.config.num_folds


def test_the_shared_checks(images, tmp_path):
    with pytest.raises(OutputError, match="it is a folder"):
        check_output_file(images, overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(tmp_path / "missing" / "a.json")
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(OutputError, match="--overwrite"):  # a link is not written through unasked
        check_output_file(tmp_path / "dangling.json")
    assert check_output_file(tmp_path / "new.json", inputs=[images, tmp_path / "m.csv"]) == tmp_path / "new.json"
    with pytest.raises(WeightsOutputError, match="a file, not a folder"):
        check_output_folder(tmp_path / "m.csv", metric="dss_sqa", overwrite=True)
    with pytest.raises(WeightsOutputError, match="holds the input file"):
        check_output_folder(tmp_path, metric="dss_sqa", overwrite=True, inputs=[tmp_path / "m.csv"])
    assert check_output_folder(tmp_path / "w", metric="dss_sqa", inputs=[images]) == tmp_path / "w"
