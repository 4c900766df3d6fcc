"""The docs' figures: docs/figures/make.py draws them, and every image the pages show exists.

The image-link check is a cheap guard independent of mkdocs (whose `--strict` build also
fails on a missing image, see mkdocs.yml `validation`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

DOCS = Path(__file__).resolve().parent.parent / "docs"
MAKE = DOCS / "figures" / "make.py"
# Markdown images (the alt text may span lines) and HTML <img> tags.
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=\"([^\"]+)\"", re.S)


def test_make_draws_the_model_free_figures(tmp_path):
    result = subprocess.run(
        [sys.executable, str(MAKE), "--only", "architecture", "gate", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.split()]
    assert sorted(p.name for p in printed) == ["architecture.png", "gate.png"]
    for name in ("architecture.png", "gate.png"):
        path = tmp_path / name
        assert path in printed
        assert path.stat().st_size < 150_000, f"{name}: {path.stat().st_size} bytes, keep figures under ~150 KB"
        with Image.open(path) as image:
            image.load()
            assert image.width >= 800 and image.height >= 400, image.size
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 16, f"{name}: {len(colours or [])} colours"
            background = max(colours)[0] / (image.width * image.height)
            assert background < 0.95, f"{name}: {background:.0%} of the image is one colour"
    assert list(tmp_path.iterdir()) and all(p.parent == tmp_path for p in tmp_path.iterdir())


def test_make_rejects_an_unknown_figure(tmp_path):
    result = subprocess.run(
        [sys.executable, str(MAKE), "--only", "no-such-figure", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no-such-figure" in result.stderr


def image_links(page: Path) -> list[str]:
    return [m.group(1) or m.group(2) for m in IMAGE_LINK.finditer(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_image_link_points_to_a_file(page):
    missing = []
    for link in image_links(page):
        if re.match(r"^[a-z]+:", link):  # http(s):, data: ... not ours to check
            continue
        target = (page.parent / link.split("#")[0]).resolve()
        if not target.is_file():
            missing.append(link)
    assert not missing, f"{page.relative_to(DOCS)} shows images that do not exist: {missing}"


def test_the_pages_show_the_figures():
    assert "figures/architecture.png" in image_links(DOCS / "index.md")
    assert "figures/gate.png" in image_links(DOCS / "gate.md")


def test_api_page_documents_every_public_name():
    """docs/api.md names each object of `semantic_iqa.__all__` (by its defining module)."""
    import semantic_iqa

    page = (DOCS / "api.md").read_text(encoding="utf-8")
    documented = {line.split()[1].rpartition(".")[2] for line in page.splitlines() if line.startswith("::: ")}
    missing = sorted(set(semantic_iqa.__all__) - documented - {"__version__"})
    assert not missing, f"docs/api.md lacks these public names: {missing}"
