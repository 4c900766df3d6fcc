"""How far the differentiable torch preprocessing is from the reference PIL pipeline.

Float tensors go through `resize_pad_tensor` (gradients kept); paths, PIL images and uint8
arrays go through PIL. On the same photo, the two 224x224 results differ by PIL's rounding
to uint8. This script measures that on real photographs (scikit-image's public-domain
sample images, or your own with --images) at several sizes, down- and up-scaled:

    python benchmarks/preprocess_accuracy.py [--images DIR]

Differences are printed in units of 1/255 (one uint8 step).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from semantic_iqa.preprocess import pil_to_tensor, resize_pad_pil, resize_pad_tensor

SIZES = [None, (640, 480), (300, 451), (224, 150), (100, 67), (57, 31), (31, 57)]  # None = native size


def photographs(folder: str | None) -> dict[str, Image.Image]:
    if folder:
        return {p.name: Image.open(p).convert("RGB") for p in sorted(Path(folder).iterdir()) if p.is_file()}
    import skimage.data  # bench extra

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    return {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description="torch vs PIL resize-pad difference")
    parser.add_argument("--images", help="folder of photographs (default: scikit-image samples)")
    args = parser.parse_args()
    photos = photographs(args.images)
    print(f"{len(photos)} photographs: {', '.join(photos)}\n")
    print("| size | max abs diff (/255) | mean abs diff (/255) |")
    print("|---|---|---|")
    worst, means = 0.0, []
    for size in SIZES:
        diffs = []
        for photo in photos.values():
            image = photo if size is None else photo.resize(size, Image.Resampling.LANCZOS)
            reference = pil_to_tensor(resize_pad_pil(image, 224))
            tensor = resize_pad_tensor(pil_to_tensor(image).unsqueeze(0), 224)[0]
            diffs.append((reference - tensor).abs() * 255)
        size_max = max(float(d.max()) for d in diffs)
        size_mean = float(np.mean([float(d.mean()) for d in diffs]))
        worst, means = max(worst, size_max), means + [size_mean]
        label = "native" if size is None else f"{size[0]}x{size[1]}"
        print(f"| {label} | {size_max:.2f} | {size_mean:.3f} |")
    print(f"\nover all: max {worst:.2f}/255, mean {np.mean(means):.3f}/255")


if __name__ == "__main__":
    main()
