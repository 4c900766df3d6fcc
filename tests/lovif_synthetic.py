"""A small synthetic data set in the LoViF training layout, for tests only.

`Train/Ref/000001.png ...`, `Train/Dist/` with the same names, `Train/Train_scores.xlsx`
(first worksheet, a header row, names written with and without `.png`). The score is driven
by a known degradation: the stronger the blur and noise, the lower the integer label 0..5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def make_lovif(root: Path, photo: Image.Image, pairs: int = 36, seed: int = 0) -> Path:
    import openpyxl

    train = root / "Train"
    (train / "Ref").mkdir(parents=True)
    (train / "Dist").mkdir()
    rng = np.random.default_rng(seed)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["picture_name", "Score"])
    for index in range(pairs):
        name = f"{index + 1:06d}"
        left, top = int(rng.integers(0, 96)), int(rng.integers(0, 96))
        reference = photo.crop((left, top, left + 160, top + 120 + index % 3 * 20))
        label = int(index % 6)
        strength = 5 - label
        distorted = reference.filter(ImageFilter.GaussianBlur(1.2 * strength))
        noise = rng.normal(0, 6 * strength, (distorted.height, distorted.width, 3))
        distorted = Image.fromarray(np.clip(np.asarray(distorted) + noise, 0, 255).astype(np.uint8))
        reference.save(train / "Ref" / f"{name}.png")
        distorted.save(train / "Dist" / f"{name}.png")
        sheet.append([name if index % 2 else f"{name}.png", label])
    workbook.save(train / "Train_scores.xlsx")
    return train
