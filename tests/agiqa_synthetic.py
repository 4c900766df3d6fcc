"""A small synthetic data set in the AGIQA-3K layout, for tests only.

`data.csv` (`name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align`,
comma-separated, a header row, written by the `csv` module so that prompts holding commas or
quotes are quoted as in the real file) beside the images, `.jpg` and `.png` alternating.
`mos_quality` is driven by a known degradation (the stronger the blur and noise, the lower);
`mos_align` is drawn independently. Prompts repeat (each serves several images), as the
real data set's prompts serve several generators.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

HEADER = ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align"]
PROMPTS = [
    'a cat wearing a hat, "oil painting", highly detailed',
    "a lighthouse at dusk",
    "two dogs, one red, one blue, on a beach",
    'the word "hello", written in neon',
    "an astronaut riding a horse on mars, 8k, trending on artstation, cinematic lighting, volumetric fog",
    "still life with apples",
]


def make_agiqa(root: Path, photo: Image.Image, count: int = 24, seed: int = 0) -> Path:
    """Write `count` images and their `data.csv` into `root`; return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        name = f"gen{index % 3}_{index:03d}.{'jpg' if index % 2 else 'png'}"
        left, top = int(rng.integers(0, 96)), int(rng.integers(0, 96))
        image = photo.crop((left, top, left + 160, top + 120 + index % 3 * 24))
        strength = index % 6  # 0 = clean .. 5 = very degraded
        image = image.filter(ImageFilter.GaussianBlur(1.2 * strength))
        noise = rng.normal(0, 6 * strength, (image.height, image.width, 3))
        image = Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))
        image.save(root / name, quality=95) if name.endswith(".jpg") else image.save(root / name)
        quality = round(4.8 - 0.85 * strength + float(rng.uniform(-0.1, 0.1)), 4)
        align = round(float(rng.uniform(0.5, 4.5)), 4)
        prompt = PROMPTS[(index // 2) % len(PROMPTS)]
        rows.append([name, prompt, "", "", "photo", quality, 0.5, align, 0.6])
    with open(root / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return root


def write_rows(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """A CSV written by the `csv` module (quoting where needed)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
