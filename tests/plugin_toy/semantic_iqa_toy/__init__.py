"""Two toy metrics for semantic-iqa, declared as data (what `semantic-iqa metrics` lists).

Plain Python: `semantic-iqa --help` reads these declarations without importing torch; each
metric's class (`target`) is imported only when the metric is created.
"""

from semantic_iqa.contract import MetricOption, ResultField
from semantic_iqa.registry import MetricInfo

__all__ = ["BRIGHTNESS", "COLOUR"]

COLOUR = MetricInfo(
    name="toy_colour",
    title="Toy colour distance",
    kind="FR",
    higher_is_better=False,
    score_range=(0.0, None),
    summary="how far the distorted image's colours are from the reference's (a toy plug-in)",
    target="semantic_iqa_toy.colour:ColourDistance",
    no_weights_help="write toy weights with `semantic-iqa make-tiny --metric toy_colour DIR`",
    inputs=("ref", "dist"),
    scoring_options=(
        MetricOption(
            "pooling",
            str,
            choices=("mean", "max"),
            default="mean",
            help="how pixel differences are pooled per channel: mean (default) or max",
        ),
    ),
    result_fields=(
        ResultField(
            "channel_gaps",
            "floats",
            "pooled |ref - dist| of the red, green and blue channels, each in [0, 1] (0 = the same)",
            column_prefix="gap",
        ),
    ),
    tiny="semantic_iqa_toy.colour:build_tiny",
)

BRIGHTNESS = MetricInfo(
    name="toy_brightness",
    title="Toy brightness",
    kind="NR",
    higher_is_better=True,
    score_range=(0.0, 1.0),
    summary="how bright an image is, through a learned sigmoid (a toy plug-in)",
    target="semantic_iqa_toy.brightness:Brightness",
    no_weights_help="write toy weights with `semantic-iqa make-tiny --metric toy_brightness DIR`",
    inputs=("image",),
    result_fields=(
        ResultField(
            "dark",
            "bool",
            "True where the image's mean level is below 0.25 (of 1)",
            in_report=True,
            flag="Images too dark to judge",
        ),
    ),
    tiny="semantic_iqa_toy.brightness:build_tiny",
)
