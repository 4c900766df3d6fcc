"""Getting a model onto a machine for offline use, and telling what of it is there.

`prefetch` (behind `semantic-iqa download`) fetches a weights repo and every Hub backbone it
references into the Hugging Face cache and checks every file's sha256; `describe` (behind
`semantic-iqa info`) tells, without any network access, what is cached, at which commit,
and whether each file is intact. Copy the cache to an air-gapped machine and set
`HF_HUB_OFFLINE=1` there.
"""

from __future__ import annotations

from pathlib import Path

from .config import BackboneSpec
from .errors import InvalidOptionError, NoPublishedWeightsError, WeightsError, WeightsNotFoundError
from .hub import fetch_weights, locate_weights, no_published_weights_message, snapshot, snapshot_backbone
from .registry import MetricInfo, metric_info
from .weights import FolderContents, checked_file, read_folder

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
    folder, name, revision = locate_weights(name_or_path, revision, info)
    if folder is None:
        folder = fetch_weights(name, revision, info, force_download=force, fetch_hint=_DOWNLOAD_HINT)
    parts = [(f"weights {name}" + (f"@{revision}" if revision else ""), folder)]
    contents = read_folder(folder)
    for entry in [*contents.head_files, *contents.backbone_files]:
        checked_file(folder, entry)
    local = {role: spec for role, spec in backbone_specs(contents).items() if spec.path is not None}
    parts += [(f"{role} backbone {spec.name}", folder / spec.path) for role, spec in local.items()]
    hub = {role: spec for role, spec in backbone_specs(contents).items() if spec.path is None}
    return parts + prefetch_backbones(hub, metric_info(contents.metric), force=force)


def prefetch_backbones(specs: dict[str, BackboneSpec], info: MetricInfo, force: bool = False) -> list[tuple[str, Path]]:
    """Fetch Hub backbones of metric `info` at their pinned revisions (e.g. the ones training builds on).

    Each role gets what its encoder class loads (a text encoder also needs its tokenizer).

    Returns:
        (what, folder) for each backbone.
    """
    encoder_classes = info.metric_class().encoder_classes
    return [
        (
            f"{role} backbone {spec.name} ({spec.repo_id}@{spec.revision})",
            snapshot_backbone(
                spec, extra_files=encoder_classes[role].hub_files, force_download=force, fetch_hint=_DOWNLOAD_HINT
            ),
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
        folder, name, revision = locate_weights(name_or_path, revision, info)
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
    lines[0] += f" ({_what(contents.metric)})"
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
        cached = _cached_backbone(spec, contents.metric, role)
        where = f"cached, commit {cached.name}, {_size(cached)}" if cached else "NOT cached"
        lines.append(f"{role} backbone {spec.repo_id}@{spec.revision or 'main'}: {where}")
    return lines


def _what(metric: str) -> str:
    """The metric and its direction ("NAME: full reference, lower is better"); the name alone if not registered."""
    try:
        info = metric_info(metric)
    except InvalidOptionError:  # a plug-in not installed here: the folder still tells its files
        return metric
    kind = "full reference" if info.kind == "FR" else "no reference"
    return f"{metric}: {kind}, {'higher' if info.higher_is_better else 'lower'} is better"


def _cached(repo_id: str, revision: str | None) -> Path | None:
    try:
        return snapshot(repo_id, revision=revision, what="", local_files_only=True)
    except WeightsNotFoundError:
        return None


def _cached_backbone(spec: BackboneSpec, metric: str, role: str) -> Path | None:
    extra = metric_info(metric).metric_class().encoder_classes[role].hub_files
    try:
        return snapshot_backbone(spec, extra_files=extra, local_files_only=True)
    except WeightsNotFoundError:
        return None


def _size(folder: Path) -> str:
    size = float(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
