"""Hugging Face conventions of `from_pretrained` / `push_to_hub`: the Hub keywords, errors, no bars.

The Hub is `fake_hub.FakeHub` on 127.0.0.1 and the client is the real huggingface_hub, in a
fresh process (it reads HF_ENDPOINT at import). Each client script runs its steps one after
another and reports each step's outcome, so every test below checks one keyword or case.
"Network down" is HF_ENDPOINT at a closed local port, with every connection refused and counted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from conftest import hand_made_hub_cache, run_python
from fake_hub import FakeHub
from test_hub import SOCKET_GUARD
from transformers.utils import logging as transformers_logging

from semantic_iqa import DSSSQA
from semantic_iqa.config import BackboneSpec
from semantic_iqa.errors import InvalidOptionError, UnknownOptionError
from semantic_iqa.registry import create_metric

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the commit `hand_made_hub_cache` files under
TOKEN = "hf_conventions_test_token"

# Runs each step, printing "STEP <name> <json>": "ok" and what it returned, or the error's type and message.
STEPS = """
import json, sys, time, traceback
from semantic_iqa import DSSSQA
def step(name, action):
    started = time.perf_counter()
    try:
        outcome = {"ok": True, "value": action()}
    except Exception as exc:
        outcome = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
    outcome["seconds"] = time.perf_counter() - started
    print("STEP", name, json.dumps(outcome, default=str), flush=True)
def load(*args, **kwargs):
    return str(DSSSQA.from_pretrained(*args, device="cpu", **kwargs).config.structure.repo_id)
"""


def steps(result) -> dict[str, dict]:
    found = {
        line.split(" ", 2)[1]: json.loads(line.split(" ", 2)[2])
        for line in result.stdout.splitlines()
        if line.startswith("STEP ")
    }
    assert found, result.stdout + result.stderr
    return found


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_env(home: Path, endpoint: str) -> dict[str, str]:
    """A user's environment without tokens or offline switch; the HF cache is home/hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SEMANTIC_IQA_"))}
    env.update(HF_HOME=str(home), HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1")
    return env


@pytest.fixture(scope="module")
def pinned_heads(tiny_dir: Path, tmp_path_factory) -> Path:
    """The tiny model as a heads-only folder whose backbones are Hub repos pinned to `COMMIT`."""
    model = DSSSQA.from_pretrained(tiny_dir, device="cpu")
    config = model.config
    model.config = type(config)(
        **{
            **config.__dict__,
            "structure": BackboneSpec("timm", "tiny dinov3", repo_id="org/dino-tiny", revision=COMMIT),
            "semantic": BackboneSpec("transformers", "tiny clip", repo_id="org/clip-tiny", revision=COMMIT),
        }
    )
    return model.save_pretrained(tmp_path_factory.mktemp("pinned-heads") / "weights")


@pytest.fixture(scope="module")
def online(tiny_dir, pinned_heads, tmp_path_factory):
    """One client run against the fake Hub: each keyword in turn. Returns (steps, hub, folders)."""
    root = tmp_path_factory.mktemp("online")
    own_cache, empty_cache = root / "own-cache", root / "empty-cache"
    cache = root / "home" / "hub"
    hand_made_hub_cache(cache, "org/pinned", tiny_dir)  # complete, no file listing (copied from elsewhere)
    partial = hand_made_hub_cache(cache, "org/partial", tiny_dir)
    (partial / "heads" / "fold_0.safetensors").unlink()  # an interrupted copy
    with FakeHub() as hub:
        for repo in ("org/tiny", "org/local-only", "org/forced", "org/pinned", "org/partial"):
            hub.add_folder(repo, tiny_dir, commit=COMMIT)
        hub.add_folder("org/heads", pinned_heads)
        hub.add_folder("org/dino-tiny", tiny_dir / "structure", commit=COMMIT)
        hub.add_folder("org/clip-tiny", tiny_dir / "semantic", commit=COMMIT)
        code = STEPS + (
            f"step('token_cache_dir', lambda: load('org/heads', token={TOKEN!r}, cache_dir={str(own_cache)!r}))\n"
            f"step('local_files_only', lambda: load('org/local-only', local_files_only=True, "
            f"cache_dir={str(empty_cache)!r}))\n"
            "step('plain_1', lambda: load('org/forced'))\n"
            "step('plain_2', lambda: load('org/forced'))\n"
            "step('force_download', lambda: load('org/forced', force_download=True))\n"
            f"step('revision', lambda: load('org/tiny', revision={COMMIT!r}))\n"
            "step('missing_revision', lambda: load('org/tiny', revision='v9'))\n"
            f"step('pinned_cached', lambda: load('org/pinned', revision={COMMIT!r}))\n"
            f"step('pinned_partial', lambda: load('org/partial', revision={COMMIT!r}))\n"
        )
        result = run_python(code, client_env(root / "home", hub.endpoint))
        yield steps(result), hub, {"own": own_cache, "default": cache, "empty": empty_cache}


def requests_for(hub: FakeHub, repo_id: str) -> list[tuple[str, str | None]]:
    """(request, Authorization header) of every request naming `repo_id`."""
    return [(r, a) for r, a in zip(hub.requests, hub.authorizations, strict=True) if f"/{repo_id}/" in r + "/"]


def test_token_is_sent_for_the_weights_and_their_hub_backbones(online):
    found, hub, _ = online
    assert found["token_cache_dir"]["ok"], found["token_cache_dir"]
    for repo in ("org/heads", "org/dino-tiny", "org/clip-tiny"):
        seen = requests_for(hub, repo)
        assert seen and all(auth == f"Bearer {TOKEN}" for _, auth in seen), (repo, seen)
    assert all(auth != f"Bearer {TOKEN}" for _, auth in requests_for(hub, "org/tiny"))  # that call only


def test_cache_dir_holds_the_weights_and_their_hub_backbones(online):
    found, _, folders = online
    assert found["token_cache_dir"]["ok"], found["token_cache_dir"]
    for repo in ("heads", "dino-tiny", "clip-tiny"):
        assert list((folders["own"] / f"models--org--{repo}" / "snapshots").iterdir()), repo
        assert not (folders["default"] / f"models--org--{repo}").exists(), repo


def test_local_files_only_with_an_empty_cache_is_a_typed_error_without_any_request(online):
    found, hub, folders = online
    outcome = found["local_files_only"]
    assert outcome["type"] == "WeightsNotFoundError", outcome
    assert "org/local-only@main" in outcome["message"] and "local_files_only=True" in outcome["message"]
    assert str(folders["empty"]) in outcome["message"]
    assert requests_for(hub, "org/local-only") == []


def test_force_download_fetches_the_cached_files_again(online):
    found, hub, _ = online
    assert all(found[name]["ok"] for name in ("plain_1", "plain_2", "force_download")), found
    config_gets = [
        r for r, _ in requests_for(hub, "org/forced") if r == f"GET /org/forced/resolve/{COMMIT}/config.json"
    ]
    assert len(config_gets) == 2  # once for the two plain loads, once more when forced


def test_revision_selects_the_commit(online):
    found, hub, _ = online
    assert found["revision"]["ok"], found["revision"]
    files = [r for r, _ in requests_for(hub, "org/tiny") if "/resolve/" in r]
    assert files and all(f"/resolve/{COMMIT}/" in r for r in files)
    assert found["missing_revision"]["type"] == "WeightsNotFoundError"
    assert "revision 'v9' not found" in found["missing_revision"]["message"]


def test_complete_pinned_commit_in_cache_makes_no_request(online):
    found, hub, _ = online
    assert found["pinned_cached"]["ok"], found["pinned_cached"]
    assert requests_for(hub, "org/pinned") == []


def test_incomplete_pinned_commit_in_cache_is_completed_from_the_hub(online):
    found, hub, _ = online
    assert found["pinned_partial"]["ok"], found["pinned_partial"]
    assert f"GET /org/partial/resolve/{COMMIT}/heads/fold_0.safetensors" in hub.requests


@pytest.fixture(scope="module")
def network_down(tiny_dir, pinned_heads, tmp_path_factory):
    """A client with the network down (HF_HUB_OFFLINE unset): load pinned repos from the cache, then push."""
    root = tmp_path_factory.mktemp("down")
    cache = root / "home" / "hub"
    hand_made_hub_cache(cache, "org/heads", pinned_heads)
    hand_made_hub_cache(cache, "org/dino-tiny", tiny_dir / "structure")
    hand_made_hub_cache(cache, "org/clip-tiny", tiny_dir / "semantic")
    code = (
        SOCKET_GUARD
        + STEPS
        + f"step('load', lambda: load('org/heads', revision={COMMIT!r}))\n"
        + "print('ATTEMPTS_AFTER_LOAD', len(_attempts))\n"
        + f"step('push', lambda: DSSSQA.from_pretrained({str(tiny_dir)!r}, device='cpu').push_to_hub('org/pushed'))\n"
    )
    result = run_python(code, client_env(root / "home", f"http://127.0.0.1:{closed_port()}"))
    return steps(result), result


def test_pinned_commits_in_cache_load_with_the_network_down_without_any_attempt(network_down):
    found, result = network_down
    assert found["load"]["ok"], found["load"]
    assert "ATTEMPTS_AFTER_LOAD 0" in result.stdout, result.stdout + result.stderr


def test_push_with_the_network_down_is_a_typed_error_naming_the_repo(network_down):
    found, _ = network_down
    outcome = found["push"]
    assert outcome["type"] == "HubUnreachableError", outcome
    assert "cannot push to org/pushed" in outcome["message"] and "HF_ENDPOINT" in outcome["message"]


def test_unknown_keyword_names_from_pretrained_before_any_download(tiny_dir):
    with pytest.raises(UnknownOptionError, match=r"DSSSQA\.from_pretrained\(\).*'tokn'") as raised:
        DSSSQA.from_pretrained("/nonexistent/weights-folder", device="cpu", tokn="x")  # checked before the folder
    assert isinstance(raised.value, TypeError)
    with pytest.raises(TypeError, match=r"from_pretrained\(\).*'gat'"):
        create_metric("dss_sqa", tiny_dir, device="cpu", gat="soft")


def test_hub_keywords_of_the_wrong_type_are_refused_and_a_local_folder_ignores_them(tiny_dir):
    with pytest.raises(InvalidOptionError, match="local_files_only must be True or False"):
        DSSSQA.from_pretrained(tiny_dir, device="cpu", local_files_only="yes")
    with pytest.raises(InvalidOptionError, match="cache_dir must be a folder path"):
        DSSSQA.from_pretrained(tiny_dir, device="cpu", cache_dir=3)
    model = DSSSQA.from_pretrained(tiny_dir, device="cpu", local_files_only=True, token=False, force_download=True)
    assert model.config.num_folds > 0


def test_loading_and_saving_print_nothing(tiny_dir, tmp_path):
    code = (
        "from semantic_iqa import DSSSQA\n"
        f"model = DSSSQA.from_pretrained({str(tiny_dir)!r}, device='cpu')\n"
        f"model.save_pretrained({str(tmp_path / 'copy')!r})\n"
    )
    result = run_python(code, {**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


@pytest.mark.parametrize("enabled", [True, False])
def test_bars_are_quiet_inside_the_call_and_global_settings_unchanged(tiny_dir, tmp_path, capfd, enabled):
    from huggingface_hub.utils import are_progress_bars_disabled

    was_enabled = transformers_logging.is_progress_bar_enabled()
    hub_bars_off = are_progress_bars_disabled()

    def user_hook(factory, args, kwargs):
        return factory(*args, **kwargs)

    (transformers_logging.enable_progress_bar if enabled else transformers_logging.disable_progress_bar)()
    hub_setting = are_progress_bars_disabled()
    before = transformers_logging.set_tqdm_hook(user_hook)
    try:
        model = DSSSQA.from_pretrained(tiny_dir, device="cpu")
        model.save_pretrained(tmp_path / "copy")
        captured = capfd.readouterr()
        assert "Loading weights" not in captured.err and "Writing model shards" not in captured.err
        assert transformers_logging.is_progress_bar_enabled() is enabled
        assert are_progress_bars_disabled() is hub_setting
        assert transformers_logging.set_tqdm_hook(user_hook) is user_hook  # the user's hook is back
    finally:
        transformers_logging.set_tqdm_hook(before)
        (transformers_logging.enable_progress_bar if was_enabled else transformers_logging.disable_progress_bar)()
        if not hub_bars_off:
            from huggingface_hub.utils import enable_progress_bars

            enable_progress_bars()


def test_cached_copy_is_used_only_for_a_full_commit(tmp_path):
    """A branch or tag may have moved, so only a 40-hex revision is taken from the cache unasked."""
    from semantic_iqa.hub_access import HubOptions, cached_commit_snapshot

    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text("{}")
    cache = tmp_path / "cache"
    hand_made_hub_cache(cache, "org/x", source)
    options = HubOptions(cache_dir=cache)
    assert cached_commit_snapshot("org/x", COMMIT, None, options) == cache / "models--org--x" / "snapshots" / COMMIT
    assert cached_commit_snapshot("org/x", "main", None, options) is None
    assert cached_commit_snapshot("org/x", COMMIT[:12], None, options) is None
    assert cached_commit_snapshot("org/x", COMMIT, None, options._replace(force_download=True)) is None
    assert cached_commit_snapshot("org/x", COMMIT, None, options, present=lambda folder: False) is None
    shutil.rmtree(cache)
    assert cached_commit_snapshot("org/x", COMMIT, None, options) is None
