"""`train --cache`: a second run with the same cache folder runs no encoder, for both metrics.

The first run fills the --cache folder (not the default cache, pointed elsewhere); the second finds every
feature there: no image goes through a frozen encoder (our wrapper classes are spied on, and still run),
no shard is added or rewritten.
"""

from __future__ import annotations

import pytest
from agiqa_synthetic import make_agiqa
from lovif_synthetic import make_lovif

from semantic_iqa.backbones.vision import ProjectedCLIPEncoder, SemanticEncoder, StructureEncoder
from semantic_iqa.cli import main
from semantic_iqa.metrics.mst_clipiqa.tiny import build_random_mst_clipiqa


@pytest.mark.parametrize("metric", ["dss_sqa", "mst_clipiqa"])
def test_a_second_run_with_the_same_cache_runs_no_encoder(metric, tiny_dir, photo, tmp_path, monkeypatch):
    pytest.importorskip("openpyxl")
    if metric == "dss_sqa":
        data, weights, options = make_lovif(tmp_path, photo, pairs=8), tiny_dir, ["--folds", "2"]
    else:
        data = make_agiqa(tmp_path / "AGIQA-3K", photo, count=10)
        weights = build_random_mst_clipiqa("A", "tiny", seed=0).save_pretrained(tmp_path / "tiny-a")
        options = ["--metric", "mst_clipiqa"]
    monkeypatch.setenv("SEMANTIC_IQA_CACHE", str(tmp_path / "default-cache"))  # where an ignored --cache would go
    encoded = []  # images through any frozen image encoder (our wrapper classes, spied, still run)
    for encoder in (StructureEncoder, SemanticEncoder, ProjectedCLIPEncoder):
        forward = encoder.forward
        monkeypatch.setattr(
            encoder, "forward", lambda self, pixels, _f=forward: encoded.append(len(pixels)) or _f(self, pixels)
        )
    cache = tmp_path / "cache"
    argv = ["train", *options, "--data", str(data), "--backbones-from", str(weights), "--cache", str(cache)]
    argv += ["--device", "cpu", "--epochs", "1", "--workers", "0", "--out"]

    assert main([*argv, str(tmp_path / "first")]) == 0
    shards = {path: path.stat().st_mtime_ns for path in cache.rglob("shard-*.safetensors")}
    assert shards and sum(encoded) > 0, "the first run fills the --cache folder"
    encoded.clear()
    assert main([*argv, str(tmp_path / "second")]) == 0
    assert encoded == [], "the second run encoded images again"
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("shard-*.safetensors")} == shards
    assert not list((tmp_path / "default-cache").rglob("shard-*")), "nothing went to the default cache"
