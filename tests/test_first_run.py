"""A rehearsal of a real user's first run, from a clean Hugging Face cache.

The local Hub stand-in (`fake_hub.FakeHub`) serves both reference backbone repos under their
real ids, at the commits `REFERENCE_CONFIG` pins, in the file layouts those repos really have
(`reference_repos`), and no published DSS-SQA weights (the repo does not exist yet). Every
command runs in a fresh process through the real `huggingface_hub` client, as the README
tells a user to run it: score (told how to get weights), train, score with the result, then
score again air-gapped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES
from dss_sqa_float64 import Float64Score, float64_score
from fake_hub import FakeHub
from lovif_synthetic import make_lovif
from reference_repos import (
    CLIP_REPO,
    DINO_REPO,
    TINY_CLIP_VISION,
    TINY_DINO,
    UNNEEDED_CLIP_FILES,
    write_clip_repo,
    write_dinov3_repo,
)
from test_hub import SOCKET_GUARD, printed

from semantic_iqa.metrics.dss_sqa.config import REFERENCE_CONFIG

REF, DIST = str(EXAMPLES / "ref.png"), str(EXAMPLES / "dist.png")
# float32 (the CLI) against float64 (tests/dss_sqa_float64.py), measured on the one pair:
# score and folds differ by 2e-7 at tiny size, 1e-7 at full size (the heads damp feature
# rounding); the cosine by 1.2e-6 and 6e-8. Plausible pipeline bugs move them by far more
# (full size: ImageNet instead of CLIP normalisation 1.5e-4 in the score and 1.1e-4 in the
# cosine, bilinear instead of bicubic resizing 6e-4 / 3e-3, the token mean instead of the CLS
# token 2e-2, features scaled by 1.001 1.8e-5, BatchNorm eps 1e-3 1.3e-5 in a fold).
SCORE_BOUND = 1e-5
COS_BOUND = 2e-5


@pytest.fixture(scope="module")
def reference_hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference-repos")
    with FakeHub() as hub:
        hub.add_folder(DINO_REPO, write_dinov3_repo(root / "dino"), commit=REFERENCE_CONFIG.structure.revision)
        hub.add_folder(CLIP_REPO, write_clip_repo(root / "clip"), commit=REFERENCE_CONFIG.semantic.revision)
        yield hub


def clean_env(home: Path, hub: FakeHub | None = None, **extra: str) -> dict[str, str]:
    """A user's environment: a fresh HF_HOME (so the cache is HF_HOME/hub), no weights variable."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SEMANTIC_IQA_"))}
    env.update(HF_HOME=str(home), HF_HUB_DISABLE_XET="1", **extra)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.endpoint
    return env


def check_against_float64(result: dict, expected: Float64Score, bound: float = SCORE_BOUND) -> None:
    """`score --json`'s figures against the float64 recomputation: score, each fold, the cosine, the gate."""
    print(f"|score - float64| = {abs(result['score'] - expected.score):.2e}, cos {expected.cos_sim:.4f}")
    assert result["gated"] == expected.gated
    assert abs(result["cos_sim"] - expected.cos_sim) <= COS_BOUND, (result["cos_sim"], expected.cos_sim)
    assert result["fold_scores"] == pytest.approx(expected.fold_scores, abs=bound, rel=0)
    assert abs(result["score"] - expected.score) <= bound, (result["score"], expected.score)


def cli(*argv: str, env: dict[str, str], guard: bool = False) -> subprocess.CompletedProcess:
    code = (
        SOCKET_GUARD if guard else ""
    ) + f"import sys; from semantic_iqa.cli import main; sys.exit(main({list(argv)!r}))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_first_run_train_from_public_backbones_then_score(reference_hub, photo, tmp_path):
    home = tmp_path / "hf-home"
    env = clean_env(home, reference_hub)

    # 1. No weights exist yet: the first score says so, and how to get some, in one line.
    first = cli("score", REF, DIST, env=env)
    assert first.returncode == 2 and len(first.stderr.strip().splitlines()) == 1, first.stderr
    message = first.stderr
    assert "no published DSS-SQA weights" in message and "semantic-iqa/dss-sqa-lovif2026@v1.0" in message
    for way in ("semantic-iqa train --data", "semantic-iqa convert-siqav3", "--weights", "SEMANTIC_IQA_WEIGHTS"):
        assert way in message
    assert "HF_HUB_OFFLINE" not in message  # not set, so not blamed

    # 2. Train on a LoViF-layout split, with no --weights and no --backbones-from.
    data = make_lovif(tmp_path / "LoViF", photo, pairs=30)
    weights = tmp_path / "my-weights"
    train = cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(weights),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--cache",
        str(tmp_path / "features"),
        env=env,
    )
    assert train.returncode == 0, train.stderr
    assert "| pooled | 30 |" in train.stdout

    # The backbones came from the Hub cache under HF_HOME, at the pinned commits, sized by
    # the served configs (not by constants in the package), and are referenced, not copied.
    config = json.loads((weights / "config.json").read_text())
    assert config["structure"] == {
        **config["structure"],
        "repo_id": DINO_REPO,
        "path": None,
        "revision": REFERENCE_CONFIG.structure.revision,
    }
    assert (
        config["semantic"]["repo_id"] == CLIP_REPO
        and config["semantic"]["revision"] == REFERENCE_CONFIG.semantic.revision
    )
    assert (config["structure_dim"], config["semantic_dim"]) == (
        TINY_DINO["embed_dim"],
        TINY_CLIP_VISION["hidden_size"],
    )
    assert not (weights / "structure").exists() and not (weights / "semantic").exists()
    snapshots = (
        home / "hub" / "models--openai--clip-vit-large-patch14-336" / "snapshots" / REFERENCE_CONFIG.semantic.revision
    )
    assert sorted(p.name for p in snapshots.iterdir()) == ["config.json", "pytorch_model.bin"]
    fetched = " ".join(reference_hub.requests)
    assert not any(f"/{name}" in fetched for name in UNNEEDED_CLIP_FILES), "only what the vision tower needs"

    # 3. Score with the result, as the README says.
    scored = cli("score", REF, DIST, "--weights", str(weights), "--device", "cpu", "--json", env=env)
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    score = result["score"]
    # The figure a wrong pipeline would miss: the same pair recomputed in float64 without the package.
    check_against_float64(result, float64_score(weights, home / "hub", Path(REF), Path(DIST)))

    # 4. Air-gapped: the same score from the cache alone, with no connection attempted.
    offline = cli(
        "score",
        REF,
        DIST,
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--json",
        env=clean_env(home, HF_HUB_OFFLINE="1"),
        guard=True,
    )
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout.splitlines()[0])["score"] == pytest.approx(score, abs=1e-6)
    assert printed(offline, "NETWORK_ATTEMPTS") == "0"


def test_offline_first_run_names_hf_hub_offline(tmp_path):
    result = cli("score", REF, DIST, env=clean_env(tmp_path / "home", HF_HUB_OFFLINE="1"))
    assert result.returncode == 2, result.stdout
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "no published DSS-SQA weights" in line and "HF_HUB_OFFLINE is set" in line


def test_download_of_the_published_model_does_not_say_run_download(reference_hub, tmp_path):
    result = cli("download", env=clean_env(tmp_path / "home", reference_hub))
    assert result.returncode == 2
    assert "no published DSS-SQA weights" in result.stderr and "semantic-iqa download" not in result.stderr


# About 20 s on 2 CPUs, nearly all of it the two fresh processes' imports (8 pairs: the fewest 2 folds take).
def test_download_reference_backbones_then_train_offline(reference_hub, photo, tmp_path):
    """The air-gapped trainer's path: fetch the two backbones on a connected machine, train offline."""
    home = tmp_path / "home"
    fetched = cli("download", "--reference-backbones", env=clean_env(home, reference_hub))
    assert fetched.returncode == 0, fetched.stderr
    assert f"{DINO_REPO}@{REFERENCE_CONFIG.structure.revision}" in fetched.stdout
    data = make_lovif(tmp_path / "LoViF", photo, pairs=8)
    train = cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "w"),
        "--epochs",
        "1",
        "--folds",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--cache",
        str(tmp_path / "features"),
        env=clean_env(home, HF_HUB_OFFLINE="1"),
        guard=True,
    )
    assert train.returncode == 0, train.stderr
    assert printed(train, "NETWORK_ATTEMPTS") == "0"
    assert "| pooled | 8 |" in train.stdout  # every pair trained on, from the cache alone
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    assert (config["structure"]["repo_id"], config["structure"]["revision"]) == (
        DINO_REPO,
        REFERENCE_CONFIG.structure.revision,
    )


# slow (24 min on a busy 2-CPU machine): reference-size backbones; test_first_run_train_from_public_backbones_then_score
# runs the same path, with the same float64 check, at tiny size by default.
@pytest.mark.slow
def test_full_size_rehearsal(tmp_path):
    """The same first run with reference-size random backbones, its score equal to a float64 recomputation."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from first_run_rehearsal import rehearse

    done = rehearse(tmp_path, pairs=12, folds=2, epochs=1)
    check_against_float64(done.scored, float64_score(done.weights, done.hub_cache, done.ref, done.dist))


def test_download_offline_names_the_switch_and_does_not_say_run_download(tmp_path):
    result = cli("download", "some-org/some-weights", env=clean_env(tmp_path / "home", HF_HUB_OFFLINE="1"))
    assert result.returncode == 2
    assert "HF_HUB_OFFLINE is set" in result.stderr and "semantic-iqa download" not in result.stderr
