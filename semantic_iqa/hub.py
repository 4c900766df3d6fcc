"""Fetching repos from the Hugging Face Hub, with errors a user can act on.

All network access goes through `huggingface_hub.snapshot_download`: its cache, locking,
`HF_HOME`/`HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_HUB_OFFLINE` and tokens apply unchanged.
"""

from __future__ import annotations

import errno
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

from .backbones import BACKBONE_FILES
from .errors import WeightsCacheError, WeightsError, WeightsNotFoundError
from .weights import checked_file, read_config, weights_source

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def snapshot(
    repo_id: str,
    *,
    revision: str | None,
    allow_patterns: list[str] | None = None,
    what: str,
    force_download: bool = False,
    local_files_only: bool = False,
) -> Path:
    """Local folder holding `repo_id` at `revision`, downloaded into the HF cache if needed.

    Args:
        repo_id: the Hub repo.
        revision: its branch, tag or commit (`None` = main).
        allow_patterns: only these files (glob patterns); `None` = the whole repo.
        what: what the repo is for, to start error messages ("weights", "backbone ...").
        force_download: fetch again even if cached (repairs a damaged cache).
        local_files_only: never contact the Hub; only the cache.

    Raises:
        WeightsNotFoundError: the repo, the revision or the cached copy (offline) is missing,
            or the repo is gated; the message says what to do.
        WeightsCacheError: the cache cannot be written (permission, read-only, disk full).
    """
    name = f"{repo_id}@{revision or 'main'}"
    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=allow_patterns,
                force_download=force_download,
                local_files_only=local_files_only,
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
        raise WeightsNotFoundError(
            f"{what}: {name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub cannot be "
            f"reached (offline?); on a connected machine run `semantic-iqa download` for this model, then copy "
            "that machine's Hugging Face cache here, or use a local weights folder"
        ) from None
    except HfHubHTTPError as exc:
        raise WeightsError(f"{what}: the Hub refused {name}: {exc}".splitlines()[0]) from None
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise WeightsCacheError(
                f"{what}: no space left while writing {name} to the Hugging Face cache ({constants.HF_HUB_CACHE}); "
                "free some space or point HF_HUB_CACHE at a larger disk"
            ) from None
        if exc.errno in _NOT_WRITABLE:
            raise WeightsCacheError(
                f"{what}: cannot write {name} to the Hugging Face cache ({constants.HF_HUB_CACHE}): {exc.strerror}; "
                "point HF_HUB_CACHE at a writable folder"
            ) from None
        raise


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload DSS-SQA weights",
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
    return commit.commit_url


def prefetch(
    name_or_path: str | None = None, revision: str | None = None, force: bool = False
) -> list[tuple[str, Path]]:
    """Fetch everything a model needs (weights repo and Hub backbones) into the HF cache.

    For air-gapped machines: run on a connected machine, copy the Hugging Face cache,
    then load offline. Fold files are checked against their sha256 after the download.

    Returns:
        (what, folder) for every part, local parts included.
    """
    folder, name, revision = weights_source(name_or_path, revision)
    if folder is None:
        folder = snapshot(name, revision=revision, what="weights", force_download=force)
    parts = [(f"weights {name}" + (f"@{revision}" if revision else ""), folder)]
    config, fold_files, backbone_files = read_config(folder)
    for entry in [*fold_files, *backbone_files]:
        checked_file(folder, entry)
    for role, spec in (("structure", config.structure), ("semantic", config.semantic)):
        what = f"{role} backbone {spec.name}"
        if spec.path is not None:
            parts.append((what, folder / spec.path))
        else:
            parts.append(
                (
                    what,
                    snapshot(
                        spec.repo_id,
                        revision=spec.revision,
                        allow_patterns=BACKBONE_FILES,
                        what=what,
                        force_download=force,
                    ),
                )
            )
    return parts


def describe(name_or_path: str | None = None, revision: str | None = None) -> list[str]:
    """Lines telling what of a model is available locally, without any network access."""
    folder, name, revision = weights_source(name_or_path, revision)
    label = name + (f"@{revision}" if revision else "")
    if folder is None:
        folder = _cached(name, revision, None)
        if folder is None:
            return [f"weights {label}: not cached; run `semantic-iqa download {name}` on a connected machine"]
        lines = [f"weights {label}: cached, commit {folder.name}, {_size(folder)}, {folder}"]
    else:
        lines = [f"weights {label}: local folder, {_size(folder)}"]
    config, fold_files, backbone_files = read_config(folder)
    for entry in [*fold_files, *backbone_files]:
        try:
            checked_file(folder, entry)
            status = "ok"
        except WeightsError as exc:
            status = "MISSING" if isinstance(exc, WeightsNotFoundError) else "DAMAGED (sha256 differs)"
        lines.append(f"  {entry['file']}  sha256 {entry['sha256'][:16]}...  {status}")
    for role, spec in (("structure", config.structure), ("semantic", config.semantic)):
        if spec.path is not None:
            lines.append(f"{role} backbone {spec.name}: stored in {spec.path}/, {_size(folder / spec.path)}")
            continue
        cached = _cached(spec.repo_id, spec.revision, BACKBONE_FILES)
        where = f"cached, commit {cached.name}, {_size(cached)}" if cached else "NOT cached"
        lines.append(f"{role} backbone {spec.repo_id}@{spec.revision or 'main'}: {where}")
    return lines


def _cached(repo_id: str, revision: str | None, allow_patterns: list[str] | None) -> Path | None:
    try:
        return snapshot(repo_id, revision=revision, allow_patterns=allow_patterns, what="", local_files_only=True)
    except WeightsNotFoundError:
        return None


def _size(folder: Path) -> str:
    size = float(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
