"""A small synthetic NIGHTS in its published layout, for tests only.

`nights/ref/XXX/YYY.png`, `nights/distort/XXX/YYY_0.png` (left) and `YYY_1.png` (right), and
`nights/data.csv` with the published header
`id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet` (paths relative
to `nights/`, right_vote the share of people who found the right distortion closer,
`is_imagenet` as pandas writes booleans). Folder and file numbers have gaps, as in the real set.

Per triplet one distortion is a light blur and the other a strong blur, on a random side; the
(imaginary) people mostly found the light one closer. Rows with fewer than 6 votes, which the
authors' loaders drop, disagree with that on purpose: counting them would change every score.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

HEADER = ["id", "left_vote", "right_vote", "votes", "ref_path", "left_path", "right_path", "split", "is_imagenet"]
# (split, is_imagenet, votes, right_vote when the RIGHT distortion is the light blur) per row.
DEFAULT_ROWS = (
    ("train", True, 6, 1.0),
    ("train", False, 7, 6 / 7),
    ("val", True, 6, 1.0),
    ("val", False, 8, 0.75),
    ("val", False, 6, 1.0),
    ("test", True, 6, 1.0),
    ("test", True, 9, 7 / 9),
    ("test", False, 6, 5 / 6),
    ("test", False, 6, 1.0),
    ("test", False, 7, 4 / 7),
    ("test", False, 6, 1.0),
    ("test", True, 5, 0.0),  # fewer than 6 votes: dropped (and contrary)
    ("val", False, 4, 0.0),  # dropped
    ("test", False, 3, 0.0),  # dropped
)


@dataclass
class SyntheticNights:
    folder: Path  # the `nights/` folder: data.csv, ref/, distort/
    rows: list[dict]  # data.csv's rows, each with "light": "left" or "right" (the closer distortion) added

    def kept(self, splits: tuple[str, ...] = ("train", "val", "test")) -> list[dict]:
        return [r for r in self.rows if int(r["votes"]) >= 6 and r["split"] in splits]


def make_nights(root: Path, photo: Image.Image, rows=DEFAULT_ROWS, seed: int = 0, size: int = 64) -> SyntheticNights:
    """Write the layout under `root / "nights"`; returns it with its rows."""
    folder = root / "nights"
    rng = np.random.default_rng(seed)
    written = []
    for index, (split, imagenet, votes, share) in enumerate(rows):
        directory, number = f"{3 * (index // 4):03d}", f"{7 * index + 2:03d}"  # gaps in both numberings
        left_light = bool(rng.integers(0, 2))
        right_vote = 1.0 - share if left_light else share
        x, y = (int(v) for v in rng.integers(0, photo.width - size, 2))
        reference = photo.crop((x, y, x + size, y + size))
        light = reference.filter(ImageFilter.GaussianBlur(0.6))
        strong = reference.filter(ImageFilter.GaussianBlur(3.0))
        paths = {
            "ref_path": f"ref/{directory}/{number}.png",
            "left_path": f"distort/{directory}/{number}_0.png",
            "right_path": f"distort/{directory}/{number}_1.png",
        }
        images = (reference, light if left_light else strong, strong if left_light else light)
        for key, image in zip(paths, images, strict=True):
            (folder / paths[key]).parent.mkdir(parents=True, exist_ok=True)
            image.save(folder / paths[key])
        written.append(
            {
                "id": str(1000 + 3 * index),
                "left_vote": f"{1.0 - right_vote:.6f}",
                "right_vote": f"{right_vote:.6f}",
                "votes": str(votes),
                **paths,
                "split": split,
                "is_imagenet": str(bool(imagenet)),
                "light": "left" if left_light else "right",
            }
        )
    write_table(folder / "data.csv", written)
    return SyntheticNights(folder, written)


def write_table(path: Path, rows: list[dict], header: list[str] = HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([row.get(column, "") for column in header] for row in rows)


def light_side_agreement(rows: list[dict]) -> float:
    """The 2AFC score (%) of a metric that always finds the light blur closer, by hand."""
    scores = [float(r["right_vote"]) if r["light"] == "right" else 1.0 - float(r["right_vote"]) for r in rows]
    return 100 * float(np.mean(scores))
