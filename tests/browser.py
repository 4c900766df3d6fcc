"""A real headless Chromium (Debian's `chromium` package) for checking HTML the package writes.

`image_widths(page)` opens a copy of the page with a probe script appended, lets Chromium
load it, and reads back every `<img>`'s `naturalWidth` (0 = the image did not load) from
the dumped DOM. `screenshot(page, png)` saves what a person would see.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROBE = (
    "<script>window.addEventListener('load', () => {const pre = document.createElement('pre');"
    "pre.id = 'image-probe'; pre.textContent = JSON.stringify([...document.images].map(i => i.naturalWidth));"
    "document.body.appendChild(pre);});</script>"
)


def chromium() -> str:
    """The Chromium binary; skip where none is installed, but fail in CI, which installs it (.ci/run)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI installs chromium (.ci/run) but none was found on PATH")
    pytest.skip("headless Chromium is not installed (apt-get install chromium)")


def _run(*arguments: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI and these machines run as root, where Chromium's sandbox refuses to start.
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def image_widths(page: Path, scratch: Path) -> list[int]:
    """`naturalWidth` of every image of `page` after Chromium loaded it (0 = broken)."""
    probed = scratch / f"probed-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _run("--dump-dom", probed.as_uri()).stdout
    match = re.search(r"<pre id=\"image-probe\">(.*?)</pre>", dom, re.S)
    assert match, "the probe did not run: Chromium did not finish loading the page"
    return json.loads(match.group(1))


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 2400) -> Path:
    """A PNG of `page` as Chromium renders it at `width` x `height` CSS pixels."""
    _run(f"--screenshot={png}", f"--window-size={width},{height}", "--hide-scrollbars", page.as_uri())
    return png
