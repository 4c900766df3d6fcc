"""One writer per result file: an exclusive lock on `<out>.lock`, held for the whole run.

The lock is the operating system's (`flock` on Unix, through the `filelock` package), not
the file's existence: the kernel releases it when the process holding it ends, however it
ends (SIGKILL, a crash, a lost terminal). So a lock left behind by a killed run never blocks
the next one, and the `<out>.lock` file itself, if left, is harmless and empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ResultLockedError


def lock_path(out: str | os.PathLike) -> Path:
    """`<out>.lock`: the file whose lock marks `out` as being written."""
    return Path(f"{out}.lock")


@contextmanager
def result_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of the result `out` for the `with` block (yields the lock file).

    Raises:
        ResultLockedError: another run (in any process) holds it: refused at once, never waited for.
    """
    path = lock_path(out)
    lock = FileLock(path, timeout=0)  # 0: a second writer is refused now, it does not queue behind the first
    try:
        lock.acquire()
    except Timeout:
        raise ResultLockedError(
            f"{out} is being written by another run (it holds {path}); wait for that run to end, or give another --out"
        ) from None
    try:
        yield path
    finally:
        lock.release()
