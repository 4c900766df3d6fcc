"""How `semantic_iqa.hub` asks the Hub: per-load options, pinned commits from the cache first.

- `hub_options(...)`: the `huggingface_hub` keywords of one `from_pretrained` call (`token`,
  `cache_dir`, `local_files_only`, `force_download`), applied to every repo that load fetches
  (the weights repo and the Hub backbones it references), without threading them through each
  metric's `load_encoder`. A context variable, so concurrent loads in threads do not mix.
- `cached_commit_snapshot(...)`: a repo pinned to a full commit hash is immutable, so a
  complete cached snapshot of it is the answer; `snapshot_download` would still call the Hub
  (and retry for ~25 s when the network is down).
- `transport_errors()`: the exceptions that mean "the Hub could not be reached", whichever HTTP
  client the installed `huggingface_hub` uses.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import NamedTuple

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from .errors import InvalidOptionError

COMMIT_HASH = re.compile(r"[0-9a-f]{40}")  # what huggingface_hub treats as an (immutable) commit


class HubOptions(NamedTuple):
    """`huggingface_hub.snapshot_download` keywords chosen by the caller of one load."""

    token: str | bool | None = None  # None: HF_TOKEN / the stored login; False: send none
    cache_dir: str | os.PathLike | None = None  # None: HF_HUB_CACHE
    local_files_only: bool = False  # never contact the Hub
    force_download: bool = False  # fetch again even if cached


_OPTIONS: ContextVar[HubOptions | None] = ContextVar("semantic_iqa_hub_options", default=None)


def current_hub_options() -> HubOptions:
    """The options of the load in progress (the defaults outside any `hub_options` block)."""
    return _OPTIONS.get() or HubOptions()


@contextmanager
def hub_options(
    *,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Iterator[HubOptions]:
    """Apply these options to every Hub snapshot taken inside the block (this thread/task only).

    Raises `InvalidOptionError` for a value of the wrong type (e.g. `local_files_only="yes"`).
    """
    for name, value in (("local_files_only", local_files_only), ("force_download", force_download)):
        if not isinstance(value, bool):
            raise InvalidOptionError(f"{name} must be True or False, got {value!r}")
    if token is not None and not isinstance(token, (str, bool)):
        raise InvalidOptionError(f"token must be a Hugging Face token string, True, False or None, got {token!r}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise InvalidOptionError(f"cache_dir must be a folder path or None, got {cache_dir!r}")
    reset = _OPTIONS.set(HubOptions(token, cache_dir, local_files_only, force_download))
    try:
        yield current_hub_options()
    finally:
        _OPTIONS.reset(reset)


def cache_folder(options: HubOptions) -> str:
    """The Hugging Face cache a snapshot with `options` reads and writes, for messages."""
    return str(options.cache_dir) if options.cache_dir is not None else constants.HF_HUB_CACHE


def cached_commit_snapshot(
    repo_id: str,
    revision: str | None,
    allow_patterns: list[str] | None,
    options: HubOptions,
    present: Callable[[Path], bool] | None = None,
) -> Path | None:
    """The cached snapshot of `repo_id` at `revision` if that is a commit hash and the snapshot is complete.

    No network access. `None` (ask the Hub) when the revision is a branch or tag (it may have
    moved), `force_download` is set, the snapshot is missing, or it is incomplete: huggingface_hub
    checks it against its cached file listing when it has one, and `present(folder)` (the files
    the caller needs) must hold in any case, since caches copied from older versions or made by
    hand have no listing.
    """
    if revision is None or not COMMIT_HASH.fullmatch(revision) or options.force_download:
        return None
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=allow_patterns,
                cache_dir=options.cache_dir,
                token=options.token,
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError:  # not cached, or known to be incomplete (IncompleteSnapshotError)
        return None
    return folder if present is None or present(folder) else None


def transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exceptions of the HTTP client huggingface_hub uses (httpx2, httpx or requests).

    Only clients already imported count (the one that raised is): nothing is imported here.
    """
    found: list[type[BaseException]] = []
    for module, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),
    ):
        client = sys.modules.get(module)
        found.extend(getattr(client, name) for name in names if client is not None and hasattr(client, name))
    return tuple(found)
