"""Weights and backbones through the real huggingface_hub client: download, cache, offline, errors.

The Hub is replaced by `fake_hub.FakeHub`, a server on 127.0.0.1 speaking the Hub's HTTP
API; `huggingface_hub` itself is the real library, configured with HF_ENDPOINT as users do.
Every client runs in a fresh process because huggingface_hub reads its settings at import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import EXAMPLES, hand_made_hub_cache, offline_env, run_python
from fake_hub import FakeHub

from semantic_iqa import DSSSQA
from semantic_iqa.config import BackboneSpec

# Refuses every connection and DNS look-up, and reports how many were tried.
SOCKET_GUARD = """
import atexit, socket
_attempts = []
def _refuse(*args, **kwargs):
    _attempts.append(args)
    raise OSError("network disabled by the test")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = socket.getaddrinfo = _refuse
atexit.register(lambda: print("NETWORK_ATTEMPTS", len(_attempts)))
"""
SCORE_EXAMPLES = (
    "import semantic_iqa; "
    f"print('SCORE', semantic_iqa.score(r'{EXAMPLES / 'ref.png'}', r'{EXAMPLES / 'dist.png'}', weights={{weights!r}}, "
    "device='cpu'))"
)


def score_code(weights: str, guard: bool = False) -> str:
    return (SOCKET_GUARD if guard else "") + SCORE_EXAMPLES.format(weights=weights)


def printed(result: subprocess.CompletedProcess, key: str) -> str:
    lines = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith(key + " ")]
    assert lines, result.stdout + result.stderr
    return lines[-1]


def last_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def local_score(tiny_dir: Path) -> float:
    return (
        DSSSQA.from_pretrained(tiny_dir, device="cpu").predict(EXAMPLES / "ref.png", EXAMPLES / "dist.png").score.item()
    )


@pytest.fixture(scope="module")
def heads_only(tiny_dir: Path, tmp_path_factory) -> Path:
    """The tiny model as a heads-only folder whose backbones are Hub repos org/dino-tiny and org/clip-tiny."""
    model = DSSSQA.from_pretrained(tiny_dir, device="cpu")
    config = model.config
    model.config = type(config)(
        **{
            **config.__dict__,
            "structure": BackboneSpec("timm", "tiny dinov3", repo_id="org/dino-tiny", revision="main"),
            "semantic": BackboneSpec("transformers", "tiny clip", repo_id="org/clip-tiny", revision="main"),
        }
    )
    return model.save_pretrained(tmp_path_factory.mktemp("heads-only") / "weights")


@pytest.fixture(scope="module")
def hub(tiny_dir: Path, heads_only: Path):
    with FakeHub() as hub:
        hub.add_folder("org/tiny", tiny_dir)  # backbones stored inside the weights repo
        hub.add_folder("org/heads", heads_only)  # backbones in their own repos
        hub.add_folder("org/dino-tiny", tiny_dir / "structure")
        hub.add_folder("org/clip-tiny", tiny_dir / "semantic")
        hub.errors["org/gated-dino"] = (403, "GatedRepo")
        yield hub


def online_env(hub: FakeHub, cache: Path) -> dict[str, str]:
    env = offline_env(cache, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1")
    env.pop("HF_HUB_OFFLINE")
    return env


def test_download_then_score_air_gapped(hub, tmp_path, local_score):
    cache = tmp_path / "hub"
    downloaded = subprocess.run(
        [sys.executable, "-m", "semantic_iqa.cli", "download", "org/heads"],
        env=online_env(hub, cache),
        capture_output=True,
        text=True,
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert "structure backbone tiny dinov3" in downloaded.stdout and "semantic backbone tiny clip" in downloaded.stdout

    # Copy the cache to "another machine" and run with no network at all.
    moved = Path(shutil.copytree(cache, tmp_path / "elsewhere" / "hub", symlinks=True))
    result = run_python(score_code("org/heads", guard=True), offline_env(moved))
    assert result.returncode == 0, result.stderr
    assert float(printed(result, "SCORE")) == pytest.approx(local_score, abs=1e-6)
    assert printed(result, "NETWORK_ATTEMPTS") == "0"

    info = run_python("from semantic_iqa.cli import main; main(['info', 'org/heads'])", offline_env(moved))
    assert "weights org/heads: cached, commit" in info.stdout
    assert info.stdout.count(" ok\n") == 5 and "org/dino-tiny@main: cached" in info.stdout


def test_weights_repo_with_stored_backbones_loads_by_repo_id(hub, tmp_path, local_score):
    result = run_python(score_code("org/tiny"), online_env(hub, tmp_path / "hub"))
    assert result.returncode == 0, result.stderr
    assert float(printed(result, "SCORE")) == pytest.approx(local_score, abs=1e-6)


def test_local_folder_makes_no_network_attempt(tiny_dir, tmp_path, local_score):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HOME": str(tmp_path / "home")}
    env.pop("HF_HUB_OFFLINE", None)  # not even offline mode: the local folder alone must suffice
    result = run_python(score_code(str(tiny_dir), guard=True), env)
    assert result.returncode == 0, result.stderr
    assert printed(result, "NETWORK_ATTEMPTS") == "0"
    assert float(printed(result, "SCORE")) == pytest.approx(local_score, abs=1e-6)


def test_hand_made_cache_backbones_offline(heads_only, tiny_dir, tmp_path, local_score):
    cache = tmp_path / "hub"
    hand_made_hub_cache(cache, "org/heads", heads_only)
    hand_made_hub_cache(cache, "org/dino-tiny", tiny_dir / "structure")
    hand_made_hub_cache(cache, "org/clip-tiny", tiny_dir / "semantic")
    result = run_python(score_code("org/heads", guard=True), offline_env(cache))
    assert result.returncode == 0, result.stderr
    assert float(printed(result, "SCORE")) == pytest.approx(local_score, abs=1e-6)
    assert printed(result, "NETWORK_ATTEMPTS") == "0"
    missing = run_python(
        "import semantic_iqa; semantic_iqa.DSSSQA.from_pretrained('org/heads', revision='v2')", offline_env(cache)
    )
    assert "org/heads@v2 is not in the Hugging Face cache" in last_error(missing)


@pytest.mark.parametrize(
    "code,message",
    [
        ("DSSSQA.from_pretrained('org/nothing')", "WeightsNotFoundError: weights: Hub repo org/nothing not found"),
        ("DSSSQA.from_pretrained('org/tiny', revision='v9')", "revision 'v9' not found in Hub repo org/tiny"),
        (
            "StructureEncoder.from_spec(BackboneSpec('timm', 'dinov3', repo_id='org/gated-dino'), None)",
            "backbone dinov3: the Hub repo org/gated-dino is gated",
        ),
    ],
)
def test_hub_errors(hub, tmp_path, code, message):
    prelude = (
        "from semantic_iqa import DSSSQA; from semantic_iqa.backbones import StructureEncoder; "
        "from semantic_iqa.config import BackboneSpec; "
    )
    error = last_error(run_python(prelude + code, online_env(hub, tmp_path / "hub")))
    assert message in error
    if "gated" in message:
        assert "HF_TOKEN" in error and "licence" in error


# Detect, repair, score again in one process (each fresh interpreter costs ~8 s of imports).
REPAIR_AND_SCORE = """
import semantic_iqa
from semantic_iqa.cli import main
try:
    semantic_iqa.score(r'{ref}', r'{dist}', weights='org/tiny', device='cpu')
except semantic_iqa.errors.SemanticIQAError as exc:
    print('ERROR', type(exc).__name__ + ': ' + str(exc).replace(chr(10), ' '))
print('REPAIRED', main(['download', 'org/tiny', '--force']))
print('SCORE', semantic_iqa.score(r'{ref}', r'{dist}', weights='org/tiny', device='cpu'))
"""


def test_damaged_cache_is_detected_and_repaired_by_download_force(hub, tmp_path, local_score):
    """A truncated file in the Hub cache: a typed error naming it and `--force`, then `download --force` repairs it."""
    cache = tmp_path / "hub"
    env = online_env(hub, cache)
    downloaded = subprocess.run(
        [sys.executable, "-m", "semantic_iqa.cli", "download", "org/tiny"], env=env, capture_output=True, text=True
    )
    assert downloaded.returncode == 0, downloaded.stderr
    fold = next(cache.glob("models--org--tiny/snapshots/*/heads/fold_2.safetensors")).resolve()
    fold.write_bytes(fold.read_bytes()[:-100])  # truncated in the cache

    result = run_python(REPAIR_AND_SCORE.format(ref=EXAMPLES / "ref.png", dist=EXAMPLES / "dist.png"), env)
    assert result.returncode == 0, result.stderr
    error = printed(result, "ERROR")
    assert error.startswith("WeightsIntegrityError") and "fold_2.safetensors: sha256 is" in error and "--force" in error
    assert printed(result, "REPAIRED") == "0"
    assert float(printed(result, "SCORE")) == pytest.approx(local_score, abs=1e-6)
    assert fold.read_bytes() == hub.repos["org/tiny"]["heads/fold_2.safetensors"]  # whole again, in place


def test_damaged_backbone_in_the_cache_gives_a_typed_error(hub, tmp_path):
    cache = tmp_path / "hub"
    env = online_env(hub, cache)
    assert run_python(score_code("org/heads"), env).returncode == 0
    weights = next(cache.glob("models--org--clip-tiny/snapshots/*/model.safetensors")).resolve()
    weights.write_bytes(weights.read_bytes()[:50])
    error = last_error(run_python(score_code("org/heads"), env))
    assert "WeightsFormatError: backbone tiny clip: cannot load" in error and "--force" in error


def test_two_processes_downloading_and_loading_at_once(hub, tmp_path, local_score):
    env = online_env(hub, tmp_path / "hub")  # one empty cache shared by both: huggingface_hub's locks
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", score_code(name)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name in ("org/heads", "org/heads")
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert float(out.split("SCORE ")[1]) == pytest.approx(local_score, abs=1e-6)


def test_two_processes_loading_one_local_folder_at_once(tiny_dir, local_score):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", score_code(str(tiny_dir))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert float(out.split("SCORE ")[1]) == pytest.approx(local_score, abs=1e-6)


def mounted_tmpfs(options: str) -> Path:
    folder = Path(tempfile.mkdtemp())
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()})")
    return folder


@pytest.mark.parametrize(
    "options,message",
    [("size=64k", "no space left while writing org/tiny@main"), ("ro,size=64k", "cannot write org/tiny@main")],
    ids=["disk-full", "read-only"],
)
def test_cache_that_cannot_be_written(hub, tmp_path, options, message):
    folder = mounted_tmpfs(options)
    try:
        env = online_env(hub, folder / "hub")
        error = last_error(run_python("import semantic_iqa; semantic_iqa.DSSSQA.from_pretrained('org/tiny')", env))
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    assert "WeightsCacheError" in error and message in error and "HF_HUB_CACHE" in error


def test_push_to_hub_then_load_by_repo_id(hub, tiny_dir, tmp_path, local_score):
    env = {**online_env(hub, tmp_path / "hub"), "HF_TOKEN": "hf_test_token"}
    push = (
        f"import semantic_iqa; m = semantic_iqa.DSSSQA.from_pretrained(r'{tiny_dir}', device='cpu'); "
        "print('URL', m.push_to_hub('org/pushed'))"
    )
    result = run_python(push, env)
    assert result.returncode == 0, result.stderr
    assert printed(result, "URL").startswith(f"{hub.endpoint}/org/pushed/commit/")
    assert set(hub.repos["org/pushed"]) == {
        p.relative_to(tiny_dir).as_posix() for p in tiny_dir.rglob("*") if p.is_file()
    }
    pulled = run_python(score_code("org/pushed"), online_env(hub, tmp_path / "other-cache"))
    assert float(printed(pulled, "SCORE")) == pytest.approx(local_score, abs=1e-6)


def test_push_to_hub_offline_says_so(tiny_dir, tmp_path):
    code = (
        f"import semantic_iqa; m = semantic_iqa.DSSSQA.from_pretrained(r'{tiny_dir}', device='cpu'); "
        "m.push_to_hub('org/new-model')"
    )
    assert "cannot push to org/new-model: HF_HUB_OFFLINE is set" in last_error(run_python(code, offline_env(tmp_path)))
