"""Fetching repos from the Hugging Face Hub, with errors a user can act on.

All network access goes through `huggingface_hub.snapshot_download`: its cache, locking,
`HF_HOME`/`HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_HUB_OFFLINE` and tokens apply unchanged.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .errors import WeightsNotFoundError


def snapshot(repo_id: str, *, revision: str | None, allow_patterns: list[str] | None = None, what: str) -> Path:
    """Local folder holding `repo_id` at `revision`, downloaded into the HF cache if needed.

    Raises:
        WeightsNotFoundError: the repo, the revision or the cached copy (offline) is missing,
            or the repo is gated; the message says what to do.
    """
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns))
    except GatedRepoError:
        raise WeightsNotFoundError(
            f"{what}: the Hub repo {repo_id} is gated; accept its licence on its Hub page and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsNotFoundError(f"{what}: Hub repo {repo_id} not found (or private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise WeightsNotFoundError(f"{what}: revision {revision!r} not found in Hub repo {repo_id}") from None
    except LocalEntryNotFoundError:
        raise WeightsNotFoundError(
            f"{what}: {repo_id}@{revision or 'main'} is not in the Hugging Face cache and the Hub cannot be "
            f"reached (offline?); fetch it on a connected machine with `hf download {repo_id}` and copy "
            "its Hugging Face cache here, or use a local weights folder"
        ) from None
