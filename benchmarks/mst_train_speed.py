"""How long MST-CLIPIQA's reference recipe takes on cached features of an AGIQA-3K-sized data set.

2,982 images' worth of random cached features at the real widths (coarse and fine
`image_embeds`, 512 each; for variant B also one prompt of 77 x 512 token states per image,
the longest a prompt can be), the reference recipe (20 epochs, batch 8, 80/20 split,
validation scored every epoch), the trainable parts at the reference sizes (722,561
parameters for A, 2,299,010 for B). The frozen towers are stand-ins (features are given),
so only the training is timed. Run:

    python benchmarks/mst_train_speed.py [--device cpu] [--threads 1 2] [--epochs 20]

The figures mean time, not accuracy: the features are random.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from semantic_iqa.backbones import CLIPTextEncoder, ProjectedCLIPEncoder
from semantic_iqa.metrics.mst_clipiqa.config import MSTCLIPIQAConfig
from semantic_iqa.metrics.mst_clipiqa.features import CachedFeatures
from semantic_iqa.metrics.mst_clipiqa.model import MSTCLIPIQA
from semantic_iqa.metrics.mst_clipiqa.text import build_clip_tokenizer
from semantic_iqa.metrics.mst_clipiqa.train import Recipe, train_on_features

AGIQA_3K_IMAGES = 2982
EMBED_DIM = 512
PROMPT_TOKENS = 77


def head_model(variant: str) -> MSTCLIPIQA:
    """Reference-size fusion and head on one-layer stand-in towers of the right output widths."""
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision = {**small, "image_size": 224, "projection_dim": EMBED_DIM}
    coarse = ProjectedCLIPEncoder.build(**vision, patch_size=32)
    fine = ProjectedCLIPEncoder.build(**vision, patch_size=16)
    if variant == "A":
        text = CLIPTextEncoder.build(build_clip_tokenizer(), True, **small, projection_dim=EMBED_DIM)
    else:
        text_sizes = {**small, "hidden_size": EMBED_DIM, "num_attention_heads": 8}
        text = CLIPTextEncoder.build(build_clip_tokenizer(), False, **text_sizes)
    model = MSTCLIPIQA(MSTCLIPIQAConfig(variant=variant), coarse, fine, text if variant == "B" else None)
    if variant == "A":
        model.compute_text_features(text)
    return model


def random_features(variant: str, images: int) -> tuple[CachedFeatures, np.ndarray]:
    generator = torch.Generator().manual_seed(0)
    features = CachedFeatures(
        torch.randn(images, EMBED_DIM, generator=generator), torch.randn(images, EMBED_DIM, generator=generator)
    )
    if variant == "B":  # worst case: a distinct, full-length prompt per image
        features.prompt_states = [torch.randn(PROMPT_TOKENS, EMBED_DIM, generator=generator) for _ in range(images)]
        features.prompt_index = np.arange(images)
    mos = np.random.default_rng(0).uniform(0, 5, images)
    return features, mos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, nargs="*", default=None, help="CPU threads to try (default: 1 and all)")
    parser.add_argument("--epochs", type=int, default=Recipe().epochs)
    parser.add_argument("--images", type=int, default=AGIQA_3K_IMAGES)
    args = parser.parse_args()
    threads = args.threads or sorted({1, torch.get_num_threads()})
    recipe = Recipe(epochs=args.epochs)
    train_size = int(recipe.train_fraction * args.images)
    steps = args.epochs * -(-train_size // recipe.batch_size)
    print(f"torch {torch.__version__}, device {args.device}; {args.images} images, {args.epochs} epochs, {steps} steps")
    print("| variant | trainable parameters | threads | seconds | ms per step |")
    print("|---|---|---|---|---|")
    for variant in ("A", "B"):
        model = head_model(variant)
        features, mos = random_features(variant, args.images)
        for count in threads:
            torch.set_num_threads(count)
            start = time.perf_counter()
            train_on_features(model, features, mos, recipe, device=args.device, progress=False)
            seconds = time.perf_counter() - start
            print(
                f"| {variant} | {model.num_trainable_parameters():,} | {count} | {seconds:.1f} | "
                f"{1000 * seconds / steps:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
