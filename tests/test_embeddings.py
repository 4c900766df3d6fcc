"""Image embeddings: `Metric.embed`, `semantic_iqa.embed` and `score-dir --embeddings FILE.parquet`.

The tiny DreamSim ensemble (random weights of the real timm classes): every number below checks
plumbing (which image's embedding lands in which row, the distance read off two rows), never
accuracy. The job: six pairs over seven image files, where one reference (`r0`) is the reference
of three pairs, the distorted image of a fourth, and spelt a second way (a symlink) in a fifth.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageFilter, ImageOps

import semantic_iqa
from semantic_iqa.cli import main
from semantic_iqa.errors import InvalidOptionError
from semantic_iqa.jobs import weights_fingerprint
from semantic_iqa.metrics.dreamsim import DreamSim
from semantic_iqa.metrics.dreamsim.tiny import build_tiny

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMAGES = ("r0", "r1", "d0", "d1", "d2", "d3", "d4")
# (id, ref, dist): r0 is the reference of p1-p3, the distorted image of p5, and "link/r0" is r0 by a symlink.
PAIRS = [("p1", "r0", "d0"), ("p2", "r0", "d1"), ("p3", "r0", "d2"), ("p4", "r1", "d3"), ("p5", "r1", "r0"),
         ("p6", "link/r0", "d4")]  # fmt: skip
ROLES = {"r0": ["ref", "dist"], "r1": ["ref"], **{f"d{i}": ["dist"] for i in range(5)}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return build_tiny(seed=0).save_pretrained(tmp_path_factory.mktemp("dreamsim") / "tiny")


@pytest.fixture(scope="module")
def model(weights) -> DreamSim:
    return DreamSim.from_pretrained(weights, device="cpu")


def make_images(folder: Path) -> Path:
    """Seven different images (a photograph, its transforms, noise) and a manifest of the six pairs."""
    photo = Image.open(EXAMPLES / "ref.png").convert("RGB").resize((64, 48))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    made = {"r0": photo, "r1": ImageOps.mirror(ImageOps.posterize(photo, 3)), "d0": photo.filter(ImageFilter.BLUR),
            "d1": ImageOps.invert(photo), "d2": noise, "d3": ImageOps.grayscale(photo).convert("RGB"),
            "d4": photo.rotate(90)}  # fmt: skip
    (folder / "link").mkdir(parents=True)
    for name, image in made.items():
        image.save(folder / f"{name}.png")
    os.symlink(folder / "r0.png", folder / "link" / "r0.png")
    with open(folder / "pairs.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("id", "ref", "dist"), *((i, f"{r}.png", f"{d}.png") for i, r, d in PAIRS)])
    return folder / "pairs.csv"


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_images(tmp_path / "images")


def score_dir(manifest: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["score-dir", "--manifest", str(manifest), "--out", str(out), "--weights", str(weights),
            "--metric", "dreamsim", "--device", "cpu", "--workers", "0", "--batch-size", "2", *extra]  # fmt: skip


def read_embeddings(path: Path) -> dict[str, dict]:
    """Rows by image name (r0, d1, ...), each path written once."""
    rows = pq.read_table(path).to_pylist()
    names = [Path(row["path"]).stem for row in rows]
    assert len(names) == len(set(names)) and len(rows) == len({row["path"] for row in rows}), "an image written twice"
    return dict(zip(names, rows, strict=True))


def expected(model: DreamSim, folder: Path, names) -> dict[str, np.ndarray]:
    names = list(names)
    vectors = model.embed([str(folder / f"{name}.png") for name in names]).numpy()
    return dict(zip(names, vectors, strict=True))


def check_rows(rows: dict[str, dict], model: DreamSim, folder: Path, roles: dict | None = None) -> None:
    """Each row is the model's embedding of its file (<= 1e-6), unit norm, zero mean, with its roles."""
    truth = expected(model, folder, rows)
    for name, row in rows.items():
        vector = np.asarray(row["embedding"], dtype=np.float32)
        assert np.abs(vector - truth[name]).max() <= 1e-6, name
        assert abs(np.linalg.norm(vector) - 1) <= 1e-5 and abs(vector.mean()) <= 1e-6
        assert sorted(row["roles"]) == sorted({**ROLES, **(roles or {})}[name]), name
        assert Path(row["path"]).resolve() == (folder / f"{name}.png").resolve()


# -- score-dir --embeddings --------------------------------------------------------------------------


def test_one_row_per_image_is_its_embedding_and_gives_each_pairs_score(manifest, weights, model, tmp_path, capsys):
    out, vectors = tmp_path / "scores.csv", tmp_path / "vectors.parquet"
    assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors), "--json", "-")) == 0
    summary = json.loads(capsys.readouterr().out)  # stdout carries the summary only (| jq)
    assert summary["embeddings"] == {"out": str(vectors), "images": 7, "missing": 0}

    rows = read_embeddings(vectors)
    assert sorted(rows) == sorted(IMAGES), "r0 (three pairs as ref, one as dist, one symlink) is one row"
    check_rows(rows, model, manifest.parent)
    results = list(csv.DictReader(out.open()))
    assert len(results) == len(PAIRS)
    by_path = {Path(row["path"]).resolve(): np.asarray(row["embedding"]) for row in rows.values()}
    for result in results:
        a, b = (by_path[Path(result[role]).resolve()] for role in ("ref", "dist"))
        assert abs((1 - a @ b) - float(result["score"])) <= 1e-5, result["id"]
    scores = [float(result["score"]) for result in results]
    assert max(scores) - min(scores) > 0.05, "the pairs' distances differ: a row swapped would show"

    # The file says which model made it, as the result's sidecar does.
    metadata = pq.read_schema(vectors).metadata
    recorded = json.loads(Path(f"{out}.job.json").read_text())["fingerprint"]
    assert metadata[b"semantic_iqa.metric"] == b"dreamsim"
    assert metadata[b"semantic_iqa.fingerprint"].decode() == recorded == weights_fingerprint(weights)
    assert b"1 - a @ b" in metadata[b"semantic_iqa.embedding"]
    assert pq.read_schema(vectors).field("embedding").type == pa.list_(pa.float32(), model.embedding_dim)


def test_the_embeddings_come_from_the_scoring_pass(manifest, weights, tmp_path, monkeypatch):
    real, encoded = DreamSim.encode, []

    def counting(self, pixels):
        encoded.append(pixels.shape[0])
        return real(self, pixels)

    monkeypatch.setattr(DreamSim, "encode", counting)
    assert main(score_dir(manifest, tmp_path / "a.csv", weights)) == 0
    without, encoded[:] = sum(encoded), []
    assert main(score_dir(manifest, tmp_path / "b.csv", weights, "--embeddings", str(tmp_path / "b.parquet"))) == 0
    assert without == 2 + 2 * len(PAIRS), "the column probe's blank pair, then each pair's two images"
    assert sum(encoded) == without + 1, "one more image (the width probe's blank), no second pass"


def test_users_read_it_with_pandas_and_search_it_with_numpy(manifest, weights, model, tmp_path):
    vectors = tmp_path / "vectors.parquet"
    assert main(score_dir(manifest, tmp_path / "s.parquet", weights, "--embeddings", str(vectors))) == 0
    frame = pd.read_parquet(vectors)
    assert list(frame.columns[:3]) == ["path", "roles", "embedding"] and len(frame) == 7
    matrix = np.stack(frame["embedding"].to_numpy())
    assert matrix.dtype == np.float32 and matrix.shape == (7, model.embedding_dim)
    query = model.embed(str(manifest.parent / "d1.png")).numpy()[0]  # retrieval: the nearest row is the file
    assert Path(frame["path"][int(np.argmax(matrix @ query))]).name == "d1.png"
    refs = frame[frame["roles"].map(lambda roles: "ref" in roles)]
    assert sorted(Path(p).name for p in refs["path"]) == ["r0.png", "r1.png"]


@pytest.mark.parametrize(
    ("metric", "folders"), [("dss_sqa", ["R", "D"]), ("mst_clipiqa", ["R"])], ids=["dss_sqa", "mst_clipiqa"]
)
def test_a_metric_without_embeddings_is_refused_before_any_model(metric, folders, tmp_path, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("semantic_iqa.cli.scoring.load_metric", no_model)
    vectors = tmp_path / "vectors.parquet"
    argv = ["score-dir", *(str(tmp_path / f) for f in folders), "--out", str(tmp_path / "s.csv"), "--metric", metric]
    assert main([*argv, "--embeddings", str(vectors)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"semantic-iqa: error: --embeddings: {metric} gives no image embeddings (metrics that do: dreamsim)"]
    assert not vectors.exists() and not (tmp_path / "s.csv").exists()


def test_an_existing_file_is_kept_unless_overwrite_and_resume_refuses_a_foreign_one(
    manifest, weights, model, tmp_path, capsys
):
    out, vectors = tmp_path / "scores.csv", tmp_path / "vectors.parquet"
    vectors.write_bytes(b"someone's data")
    assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors))) == 2
    assert "refusing to overwrite --embeddings" in capsys.readouterr().err
    assert vectors.read_bytes() == b"someone's data" and not out.exists(), "refused before anything was written"
    # --resume adds only to an embeddings file of this model: one without its sidecar is not this job's
    assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors), "--resume")) == 2
    assert "cannot resume" in capsys.readouterr().err and vectors.read_bytes() == b"someone's data"
    # neither another output of the job nor an input (here a Parquet manifest)
    same = tmp_path / "same.parquet"
    assert main(score_dir(manifest, same, weights, "--embeddings", str(same))) == 2
    assert "would overwrite another output of this job" in capsys.readouterr().err
    parquet_manifest = manifest.with_suffix(".parquet")
    pq.write_table(pa.Table.from_pylist(list(csv.DictReader(manifest.open()))), parquet_manifest)
    kept = parquet_manifest.read_bytes()
    assert main(score_dir(parquet_manifest, tmp_path / "m.csv", weights, "--embeddings", str(parquet_manifest))) == 2
    assert "one of the job's input files" in capsys.readouterr().err and parquet_manifest.read_bytes() == kept

    assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors), "--overwrite")) == 0
    check_rows(read_embeddings(vectors), model, manifest.parent)
    other_model = build_tiny(seed=1).save_pretrained(tmp_path / "other")
    before = vectors.read_bytes()
    assert main(score_dir(manifest, out, other_model, "--embeddings", str(vectors), "--resume")) == 2
    assert "another model" in capsys.readouterr().err and vectors.read_bytes() == before


def test_ctrl_c_keeps_both_files_consistent_and_the_resume_hint_finishes_them(
    manifest, weights, model, tmp_path, monkeypatch, capsys
):
    out, vectors = tmp_path / "scores.parquet", tmp_path / "vectors.parquet"
    real, calls = DreamSim.score_and_embed, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 3:  # the column probe, then two batches of two pairs: p1-p4
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(DreamSim, "score_and_embed", interrupted)
        assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors))) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted: 4 of 6 rows are saved" in err[0]
    assert sorted(row["id"] for row in pq.read_table(out).to_pylist()) == ["p1", "p2", "p3", "p4"]
    rows = read_embeddings(vectors)  # merged on the way out: a plain Parquet file, no parts left
    assert not Path(f"{vectors}.parts").exists()
    assert sorted(rows) == ["d0", "d1", "d2", "d3", "r0", "r1"], "the images of the pairs scored, each once"
    check_rows(rows, model, manifest.parent)

    hint = shlex.split(err[0].split("resume with: ")[1])
    assert "--embeddings" in hint and hint[-1] == "--resume"
    assert main(hint[1:]) == 0
    rows = read_embeddings(vectors)
    assert sorted(rows) == sorted(IMAGES)
    check_rows(rows, model, manifest.parent)
    assert len(pq.read_table(out)) == len(PAIRS)


def test_resume_embeds_what_is_missing_and_again_what_changed(manifest, weights, model, tmp_path, capsys):
    out, vectors = tmp_path / "scores.csv", tmp_path / "vectors.parquet"
    assert main(score_dir(manifest, out, weights)) == 0
    scores = out.read_text()
    # embeddings asked for after the job: its images are embedded, nothing is scored again
    assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors), "--resume")) == 0
    assert "embedding 7 image(s) not scored in this run" in capsys.readouterr().err
    assert out.read_text() == scores
    check_rows(read_embeddings(vectors), model, manifest.parent)
    before = read_embeddings(vectors)

    # d0 changes (its pair is scored again); p5 and p6 leave the job: d4 is in no pair now, r0 only a reference
    ImageOps.solarize(Image.open(manifest.parent / "r1.png"), 100).save(manifest.parent / "d0.png")
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(line for line in lines if not line.startswith(("p5", "p6"))) + "\n")
    assert main(score_dir(manifest, out, weights, "--embeddings", str(vectors), "--resume")) == 0
    rows = read_embeddings(vectors)
    assert sorted(rows) == ["d0", "d1", "d2", "d3", "r0", "r1"]
    check_rows(rows, model, manifest.parent, roles={"r0": ["ref"]})
    assert np.abs(np.asarray(rows["d0"]["embedding"]) - np.asarray(before["d0"]["embedding"])).max() > 0.01


def test_an_image_that_cannot_be_decoded_has_no_row_and_the_others_do(manifest, weights, model, tmp_path, capsys):
    (manifest.parent / "d2.png").write_bytes(b"not a PNG")
    vectors = tmp_path / "vectors.parquet"
    assert main(score_dir(manifest, tmp_path / "s.csv", weights, "--embeddings", str(vectors), "--json", "-")) == 1
    assert json.loads(capsys.readouterr().out)["embeddings"]["missing"] == 1
    rows = read_embeddings(vectors)
    assert sorted(rows) == sorted(set(IMAGES) - {"d2"})
    check_rows(rows, model, manifest.parent)


# -- Python -----------------------------------------------------------------------------------------------


def test_embed_is_the_metrics_generic_method_and_semantic_iqa_embed(manifest, weights, model):
    folder = manifest.parent
    paths = [str(folder / f"{name}.png") for name in ("r0", "d1", "d3")]
    vectors = model.embed(paths, batch_size=2)
    assert vectors.shape == (3, model.embedding_dim) and vectors.dtype == torch.float32
    pixels = torch.stack([model.image_transform()(path) for path in paths])
    torch.testing.assert_close(vectors, model.encode(pixels), rtol=0, atol=1e-6)
    # any input kind: the decoded images as uint8 arrays give the same rows
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    torch.testing.assert_close(model.embed(arrays), vectors, rtol=0, atol=1e-6)

    api = semantic_iqa.embed(paths, metric="dreamsim", weights=weights, device="cpu")
    torch.testing.assert_close(api, vectors, rtol=0, atol=1e-6)
    score = semantic_iqa.score(paths[0], paths[1], metric="dreamsim", weights=weights, device="cpu")
    assert abs((1 - float(vectors[0] @ vectors[1])) - score) <= 1e-5
    assert semantic_iqa.embed(paths[2], metric="dreamsim", weights=weights, device="cpu").shape == (1, 80)


def test_a_metric_without_embeddings_says_which_metrics_have_them(tiny_model, tmp_path):
    with pytest.raises(InvalidOptionError, match=r"dss_sqa gives no image embeddings \(metrics that do: dreamsim\)"):
        tiny_model.embed(str(EXAMPLES / "ref.png"))
    with pytest.raises(InvalidOptionError, match="metrics that do: dreamsim"):
        tiny_model.embed_batch(torch.zeros(1, 3, 32, 32))
    # refused from the registry entry, before the (missing) weights would be looked for
    with pytest.raises(InvalidOptionError, match="mst_clipiqa gives no image embeddings"):
        semantic_iqa.embed(str(EXAMPLES / "ref.png"), metric="mst_clipiqa", weights=tmp_path / "missing")
    assert semantic_iqa.metric_info("dreamsim").embeddings and not semantic_iqa.metric_info("dss_sqa").embeddings


# -- Ray --------------------------------------------------------------------------------------------------


def test_the_ray_engine_writes_the_local_engines_embeddings(manifest, weights, model, tmp_path, capsys):
    pytest.importorskip("ray.data", reason="the Ray engine needs the [ray] extra")
    import ray

    from semantic_iqa.ray import PairScorer, init_local_ray

    with pytest.raises(InvalidOptionError, match="dss_sqa gives no image embeddings"):  # before any model
        PairScorer(metric="dss_sqa", weights=tmp_path / "missing", embeddings=True)
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert main(score_dir(manifest, tmp_path / "local.csv", weights, "--embeddings", str(local))) == 0
    init_local_ray(num_cpus=2)
    try:
        ray_argv = score_dir(manifest, tmp_path / "ray.csv", weights, "--embeddings", str(remote), "--engine", "ray")
        assert main(ray_argv) == 0
    finally:
        ray.shutdown()
    assert "embeddings of 7 image(s)" in capsys.readouterr().err
    mine, theirs = read_embeddings(local), read_embeddings(remote)
    assert mine.keys() == theirs.keys() == set(IMAGES)
    for name in IMAGES:
        assert sorted(theirs[name]["roles"]) == sorted(mine[name]["roles"])
        assert np.abs(np.asarray(theirs[name]["embedding"]) - np.asarray(mine[name]["embedding"])).max() <= 1e-6
    assert (
        pq.read_schema(remote).metadata[b"semantic_iqa.fingerprint"]
        == pq.read_schema(local).metadata[b"semantic_iqa.fingerprint"]
    )


def test_metrics_verbose_lists_what_each_embedding_is(capsys):
    assert main(["metrics", "--verbose"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if "--embeddings" in line]
    assert lines == [f"embeddings (--embeddings FILE.parquet): {semantic_iqa.metric_info('dreamsim').embeddings}"]
