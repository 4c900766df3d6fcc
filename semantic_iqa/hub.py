"""Fetching repos from the Hugging Face Hub, with errors a user can act on.

All network access goes through `huggingface_hub.snapshot_download`: its cache, locking,
`HF_HOME`/`HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_HUB_OFFLINE` and tokens apply unchanged, and
so do the keywords a `from_pretrained` call gives (`semantic_iqa.hub_access.hub_options`).
A repo pinned to a commit hash is taken from the cache without asking the Hub when its
snapshot there is complete.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ._version import __version__
from .config import BACKBONE_CONFIG_FILE, BACKBONE_WEIGHT_FILES, BackboneSpec
from .errors import (
    HubUnreachableError,
    NoPublishedWeightsError,
    SemanticIQAError,
    WeightsCacheError,
    WeightsError,
    WeightsNotFoundError,
)
from .hub_access import cache_folder, cached_commit_snapshot, current_hub_options, transport_errors
from .registry import MetricInfo
from .weights import read_folder, weights_source

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


# long: one try whose excepts turn each Hub error into its typed error; they read best side by side
def snapshot(
    repo_id: str,
    *,
    revision: str | None,
    allow_patterns: list[str] | None = None,
    what: str,
    force_download: bool = False,
    local_files_only: bool = False,
    fetch_hint: str | None = None,
    present: Callable[[Path], bool] | None = None,
) -> Path:
    """Local folder holding `repo_id` at `revision`, downloaded into the HF cache if needed.

    The `hub_options` of the load in progress apply (token, cache folder; their
    `force_download` / `local_files_only` add to these arguments). A `revision` that is a
    commit hash is looked up in the cache first, and the Hub is asked only if the snapshot
    there is missing or incomplete.

    Args:
        repo_id: the Hub repo.
        revision: its branch, tag or commit (`None` = main).
        allow_patterns: only these files (glob patterns); `None` = the whole repo.
        what: what the repo is for, to start error messages ("weights", "backbone ...").
        force_download: fetch again even if cached (repairs a damaged cache).
        local_files_only: never contact the Hub; only the cache.
        fetch_hint: how to get the repo when it is neither cached nor reachable (default:
            `semantic-iqa download` on a connected machine, then copy the cache).
        present: for a pinned commit found in the cache: whether the snapshot folder holds
            the files the caller needs (else the Hub is asked, as for a missing snapshot).

    Raises:
        WeightsNotFoundError: the repo, the revision or the cached copy (offline) is missing,
            or the repo is gated; the message says what to do.
        WeightsCacheError: the cache cannot be written (permission, read-only, disk full).
    """
    name = f"{repo_id}@{revision or 'main'}"
    options = current_hub_options()
    options = options._replace(
        force_download=force_download or options.force_download,
        local_files_only=local_files_only or options.local_files_only,
    )
    cache = cache_folder(options)
    try:
        if not options.local_files_only and not constants.HF_HUB_OFFLINE:
            cached = cached_commit_snapshot(repo_id, revision, allow_patterns, options, present)
            if cached is not None:
                return cached
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=allow_patterns,
                cache_dir=options.cache_dir,
                token=options.token,
                force_download=options.force_download,
                local_files_only=options.local_files_only,
            )
        )
    except GatedRepoError:
        raise WeightsNotFoundError(
            f"{what}: the Hub repo {repo_id} is gated (its weights are under a licence, e.g. Meta's DINOv3 "
            f"licence): accept it on the repo's Hub page, then set HF_TOKEN to a token of that account"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsNotFoundError(
            f"{what}: Hub repo {repo_id} not found (check the name; for a private repo set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise WeightsNotFoundError(f"{what}: revision {revision!r} not found in Hub repo {repo_id}") from None
    except LocalEntryNotFoundError:
        hint = fetch_hint or (
            "on a connected machine run `semantic-iqa download` for this model, then copy that machine's "
            "Hugging Face cache here, or use a local weights folder"
        )
        raise WeightsNotFoundError(
            f"{what}: {name} is not in the Hugging Face cache ({cache}) and "
            f"{_why_not_reached(options.local_files_only and not constants.HF_HUB_OFFLINE)}; {hint}"
        ) from None
    except HfHubHTTPError as exc:
        raise WeightsError(f"{what}: the Hub refused {name}: {exc}".splitlines()[0]) from None
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise WeightsCacheError(
                f"{what}: no space left while writing {name} to the Hugging Face cache ({cache}); "
                "free some space or point HF_HUB_CACHE at a larger disk"
            ) from None
        if exc.errno in _NOT_WRITABLE:
            raise WeightsCacheError(
                f"{what}: cannot write {name} to the Hugging Face cache ({cache}): {exc.strerror}; "
                "point HF_HUB_CACHE at a writable folder"
            ) from None
        raise


def _why_not_reached(local_files_only: bool = False) -> str:
    """Why the Hub was not asked, in words: the offline switch, `local_files_only`, else the network."""
    if local_files_only:
        return "local_files_only=True, so the Hub was not contacted"
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set, so the Hub was not contacted (unset it to download)"
    return f"the Hub ({constants.ENDPOINT}) cannot be reached"


def snapshot_backbone(
    spec: BackboneSpec,
    *,
    extra_files: tuple[str, ...] = (),
    force_download: bool = False,
    local_files_only: bool = False,
    fetch_hint: str | None = None,
) -> Path:
    """Local folder of a Hub backbone: its `config.json`, ONE weights file, and `extra_files`.

    The weights file is `model.safetensors` where the revision has it, else the library's
    next accepted name (`pytorch_model.bin` for transformers). Nothing else of the repo (the
    TensorFlow and Flax copies, and the tokenizer unless a text encoder asks for it in
    `extra_files`) is downloaded.
    """
    names = BACKBONE_WEIGHT_FILES.get(spec.library)
    if names is None:
        raise WeightsError(f"backbone {spec.name}: unknown library {spec.library!r}")

    def present(folder: Path) -> bool:  # what loading needs, for a cached commit with no file listing
        return (
            (folder / BACKBONE_CONFIG_FILE).is_file()
            and any((folder / name).is_file() for name in names)
            and (not extra_files or any((folder / name).is_file() for name in extra_files))
        )

    options = {
        "force_download": force_download,
        "local_files_only": local_files_only,
        "fetch_hint": fetch_hint,
        "present": present,
    }
    what = f"backbone {spec.name}"
    folder = snapshot(
        spec.repo_id,
        revision=spec.revision,
        allow_patterns=[BACKBONE_CONFIG_FILE, names[0], *extra_files],
        what=what,
        **options,
    )
    for fallback in names[1:]:
        if any((folder / name).is_file() for name in names):
            break
        folder = snapshot(spec.repo_id, revision=spec.revision, allow_patterns=[fallback], what=what, **options)
    return folder


def resolve_weights(
    name_or_path: str | os.PathLike | None, revision: str | None = None, info: MetricInfo | None = None
) -> Path:
    """Local folder of a weights folder path or of a Hub repo id (fetched into the HF cache).

    `None` means the metric's default (`info.default_source()`: its environment variable,
    else its pinned published weights).

    Raises:
        NoPublishedWeightsError: the default was asked for, and there is none, or it is
            neither on the Hub nor cached: the message says how to get weights.
        WeightsNotFoundError, WeightsCacheError: as `snapshot`.
    """
    folder, name, revision = locate_weights(name_or_path, revision, info)
    if folder is not None:
        return folder
    return fetch_weights(name, revision, info)


def locate_weights(
    name_or_path: str | os.PathLike | None, revision: str | None, info: MetricInfo | None
) -> tuple[Path | None, str, str | None]:
    """(local folder or None, name, revision) of named weights, or of `info`'s default; no network.

    Raises `NoPublishedWeightsError` when nothing is named and the metric has no default.
    """
    if name_or_path is None:
        if info is None:
            raise WeightsNotFoundError("no weights given: pass a weights folder or a Hub repo id")
        name_or_path, default_revision = info.default_source()
        if name_or_path is None:
            raise NoPublishedWeightsError(no_published_weights_message(info))
        revision = revision or default_revision
    return weights_source(name_or_path, revision)


def fetch_weights(name: str, revision: str | None, info: MetricInfo | None, **options) -> Path:
    """`snapshot` of a weights repo; a missing default repo of `info` becomes `NoPublishedWeightsError`."""
    try:
        return snapshot(name, revision=revision, what="weights", present=_weights_files_present, **options)
    except WeightsCacheError:
        raise
    except WeightsNotFoundError:
        if info is None or info.default_weights is None or name != info.default_weights.repo_id:
            raise
        raise NoPublishedWeightsError(no_published_weights_message(info)) from None


def _weights_files_present(folder: Path) -> bool:
    """Whether a weights snapshot holds its `config.json` and every file that lists (sha256s are checked on load)."""
    try:
        contents = read_folder(folder)
    except SemanticIQAError:
        return False
    return all((folder / entry["file"]).is_file() for entry in [*contents.head_files, *contents.backbone_files])


def no_published_weights_message(info: MetricInfo) -> str:
    """What to do when a metric's published weights are asked for but cannot be had."""
    offline = " (HF_HUB_OFFLINE is set, so the Hub was not asked)" if constants.HF_HUB_OFFLINE else ""
    default = info.default_weights
    where = f"{default.repo_id}@{default.revision} has not been" if default else "no weights have been"
    return (
        f"no published {info.title} weights are available: as of semantic-iqa {__version__}, {where} "
        f"published on the Hugging Face Hub{offline}. {info.no_weights_help}"
    )


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload semantic-iqa weights",
    create_pr: bool = False,
) -> str:
    """Create `repo_id` if needed and upload `folder` to it in one commit; returns the commit URL."""
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message,
            create_pr=create_pr,
        )
    except OfflineModeIsEnabled:
        raise WeightsError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set") from None
    except HfHubHTTPError as exc:
        raise WeightsError(f"push to {repo_id} failed: {exc}".splitlines()[0]) from None
    except transport_errors() as exc:  # connection refused, DNS, timeout, proxy: before any HTTP answer
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise HubUnreachableError(
            f"cannot push to {repo_id}: the Hub ({constants.ENDPOINT}) cannot be reached ({reason}); "
            "check the network connection, proxy settings and HF_ENDPOINT, then push again"
        ) from None
    return commit.commit_url
