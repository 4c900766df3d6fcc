"""Fetching repos from the Hugging Face Hub, with errors a user can act on.

All network access goes through `huggingface_hub.snapshot_download`: its cache, locking,
`HF_HOME`/`HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_HUB_OFFLINE` and tokens apply unchanged.
"""

from __future__ import annotations

import errno
import os
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
from .errors import NoPublishedWeightsError, WeightsCacheError, WeightsError, WeightsNotFoundError
from .registry import MetricInfo, metric_info
from .weights import FolderContents, checked_file, read_folder, weights_source

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
    fetch_hint: str | None = None,
) -> Path:
    """Local folder holding `repo_id` at `revision`, downloaded into the HF cache if needed.

    Args:
        repo_id: the Hub repo.
        revision: its branch, tag or commit (`None` = main).
        allow_patterns: only these files (glob patterns); `None` = the whole repo.
        what: what the repo is for, to start error messages ("weights", "backbone ...").
        force_download: fetch again even if cached (repairs a damaged cache).
        local_files_only: never contact the Hub; only the cache.
        fetch_hint: how to get the repo when it is neither cached nor reachable (default:
            `semantic-iqa download` on a connected machine, then copy the cache).

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
        hint = fetch_hint or (
            "on a connected machine run `semantic-iqa download` for this model, then copy that machine's "
            "Hugging Face cache here, or use a local weights folder"
        )
        raise WeightsNotFoundError(
            f"{what}: {name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            f"{_why_not_reached()}; {hint}"
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


def _why_not_reached() -> str:
    """Why the Hub was not asked, in words: the offline switch when it is set, else the network."""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set, so the Hub was not contacted (unset it to download)"
    return f"the Hub ({constants.ENDPOINT}) cannot be reached"


def snapshot_backbone(
    spec: BackboneSpec, *, force_download: bool = False, local_files_only: bool = False, fetch_hint: str | None = None
) -> Path:
    """Local folder of a Hub backbone: its `config.json` and ONE weights file.

    The weights file is `model.safetensors` where the revision has it, else the library's
    next accepted name (`pytorch_model.bin` for transformers): nothing else of the repo (the
    TensorFlow and Flax copies, the tokenizer) is downloaded.
    """
    names = BACKBONE_WEIGHT_FILES.get(spec.library)
    if names is None:
        raise WeightsError(f"backbone {spec.name}: unknown library {spec.library!r}")
    options = {"force_download": force_download, "local_files_only": local_files_only, "fetch_hint": fetch_hint}
    what = f"backbone {spec.name}"
    folder = snapshot(
        spec.repo_id, revision=spec.revision, allow_patterns=[BACKBONE_CONFIG_FILE, names[0]], what=what, **options
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
    folder, name, revision = _source(name_or_path, revision, info)
    if folder is not None:
        return folder
    return _fetch_weights(name, revision, info)


def _source(
    name_or_path: str | os.PathLike | None, revision: str | None, info: MetricInfo | None
) -> tuple[Path | None, str, str | None]:
    if name_or_path is None:
        if info is None:
            raise WeightsNotFoundError("no weights given: pass a weights folder or a Hub repo id")
        name_or_path, default_revision = info.default_source()
        if name_or_path is None:
            raise NoPublishedWeightsError(no_published_weights_message(info))
        revision = revision or default_revision
    return weights_source(name_or_path, revision)


def _fetch_weights(name: str, revision: str | None, info: MetricInfo | None, **options) -> Path:
    try:
        return snapshot(name, revision=revision, what="weights", **options)
    except WeightsCacheError:
        raise
    except WeightsNotFoundError:
        if info is None or info.default_weights is None or name != info.default_weights.repo_id:
            raise
        raise NoPublishedWeightsError(no_published_weights_message(info)) from None


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
    return commit.commit_url


# Said by `semantic-iqa download` when the Hub cannot be reached: running download again won't help.
_DOWNLOAD_HINT = "connect this machine to the Hub, or download on a connected machine and copy its Hugging Face cache"


def prefetch(
    name_or_path: str | None = None, revision: str | None = None, force: bool = False, info: MetricInfo | None = None
) -> list[tuple[str, Path]]:
    """Fetch everything a model needs (weights repo and Hub backbones) into the HF cache.

    For air-gapped machines: run on a connected machine, copy the Hugging Face cache,
    then load offline. Every listed file is checked against its sha256 after the download.

    Returns:
        (what, folder) for every part, local parts included.
    """
    folder, name, revision = _source(name_or_path, revision, info)
    if folder is None:
        folder = _fetch_weights(name, revision, info, force_download=force, fetch_hint=_DOWNLOAD_HINT)
    parts = [(f"weights {name}" + (f"@{revision}" if revision else ""), folder)]
    contents = read_folder(folder)
    for entry in [*contents.head_files, *contents.backbone_files]:
        checked_file(folder, entry)
    for role, spec in backbone_specs(contents).items():
        what = f"{role} backbone {spec.name}"
        if spec.path is not None:
            parts.append((what, folder / spec.path))
        else:
            parts.append((what, snapshot_backbone(spec, force_download=force, fetch_hint=_DOWNLOAD_HINT)))
    return parts


def prefetch_backbones(specs: dict[str, BackboneSpec], force: bool = False) -> list[tuple[str, Path]]:
    """Fetch Hub backbones at their pinned revisions (e.g. the ones training builds on).

    Returns:
        (what, folder) for each backbone.
    """
    return [
        (
            f"{role} backbone {spec.repo_id}@{spec.revision}",
            snapshot_backbone(spec, force_download=force, fetch_hint=_DOWNLOAD_HINT),
        )
        for role, spec in specs.items()
    ]


def backbone_specs(contents: FolderContents) -> dict[str, BackboneSpec]:
    """The backbones a weights folder's settings name, by role (parsed by its metric's config)."""
    config_class = metric_info(contents.metric).metric_class().config_class
    return config_class.from_dict(contents.settings).backbone_specs()


def describe(name_or_path: str | None = None, revision: str | None = None, info: MetricInfo | None = None) -> list[str]:
    """Lines telling what of a model is available locally, without any network access."""
    try:
        folder, name, revision = _source(name_or_path, revision, info)
    except NoPublishedWeightsError as exc:
        return [str(exc)]
    label = name + (f"@{revision}" if revision else "")
    if folder is None:
        folder = _cached(name, revision)
        if folder is None:
            if info is not None and info.default_weights and name == info.default_weights.repo_id:
                return [f"weights {label}: not cached; " + no_published_weights_message(info)]
            return [f"weights {label}: not cached; run `semantic-iqa download {name}` on a connected machine"]
        lines = [f"weights {label}: cached, commit {folder.name}, {_size(folder)}, {folder}"]
    else:
        lines = [f"weights {label}: local folder, {_size(folder)}"]
    contents = read_folder(folder)
    lines[0] += f" ({contents.metric})"
    for entry in [*contents.head_files, *contents.backbone_files]:
        try:
            checked_file(folder, entry)
            status = "ok"
        except WeightsError as exc:
            status = "MISSING" if isinstance(exc, WeightsNotFoundError) else "DAMAGED (sha256 differs)"
        lines.append(f"  {entry['file']}  sha256 {entry['sha256'][:16]}...  {status}")
    for role, spec in backbone_specs(contents).items():
        if spec.path is not None:
            lines.append(f"{role} backbone {spec.name}: stored in {spec.path}/, {_size(folder / spec.path)}")
            continue
        cached = _cached_backbone(spec)
        where = f"cached, commit {cached.name}, {_size(cached)}" if cached else "NOT cached"
        lines.append(f"{role} backbone {spec.repo_id}@{spec.revision or 'main'}: {where}")
    return lines


def _cached(repo_id: str, revision: str | None) -> Path | None:
    try:
        return snapshot(repo_id, revision=revision, what="", local_files_only=True)
    except WeightsNotFoundError:
        return None


def _cached_backbone(spec: BackboneSpec) -> Path | None:
    try:
        return snapshot_backbone(spec, local_files_only=True)
    except WeightsNotFoundError:
        return None


def _size(folder: Path) -> str:
    size = float(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
