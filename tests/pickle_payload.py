"""A pickle that runs code when unpickled in full: the safe loaders must refuse it, unrun."""

from __future__ import annotations

from pathlib import Path


class CreatesAFile:
    """Unpickling this object opens (so creates) `marker`: a stand-in for code run by a pickle.

    The test checks that `marker` does not exist after a load refused it.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))
