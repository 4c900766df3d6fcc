"""MST-CLIPIQA's two registry entries, one per variant (setup.cfg's entry points name them).

Plain Python: the command line reads them to build its flags without importing torch.
"""

from ...contract import ResultField
from ...registry import MetricInfo

_MST_HELP = (
    "The authors released no weights. Get weights in one of three ways: "
    "(1) train on AGIQA-3K from the public CLIP backbones: "
    "`semantic-iqa train --metric {metric} --data AGIQA-3K --labels {labels} --out my-weights`; "
    "(2) convert an authors'-format checkpoint: "
    "`semantic-iqa convert-mst-clipiqa best_model_variant_{variant}.pth --variant {variant} --out my-weights`; "
    "(3) pass weights= (Python) or --weights (CLI) a weights folder or Hub repo id"
)
_GATE_MEAN = ResultField(
    "gate_mean",
    "float",
    "mean of the fusion gate, in [0, 1] (1 = the coarse stream only)",
    in_report=True,
    label="fusion gate",
)

MST_CLIPIQA = MetricInfo(
    name="mst_clipiqa",
    title="MST-CLIPIQA",
    kind="NR",
    higher_is_better=True,
    score_range=(1.0, 5.0),
    summary="no-reference quality of (AI-generated) images: two CLIP streams, gated fusion, quality templates",
    target="semantic_iqa.metrics.mst_clipiqa:MSTCLIPIQA",
    options={"variant": "A"},
    weights_env_var="SEMANTIC_IQA_MST_CLIPIQA_WEIGHTS",
    no_weights_help=_MST_HELP.format(metric="mst_clipiqa", labels="mos_quality", variant="A"),
    inputs=("image",),
    tiny="semantic_iqa.metrics.mst_clipiqa.tiny:build_tiny",
    result_fields=(
        _GATE_MEAN,
        ResultField("probabilities", "floats", "probability of each quality level, bad .. perfect", column_prefix="p"),
    ),
)

MST_CLIPIQA_PROMPT = MetricInfo(
    name="mst_clipiqa_prompt",
    title="MST-CLIPIQA (prompt-anchored)",
    kind="NR",
    higher_is_better=True,
    score_range=(None, None),  # a regression on the training labels' scale
    summary="does the generated image show what its prompt asked for? (MST-CLIPIQA variant B)",
    target="semantic_iqa.metrics.mst_clipiqa:MSTCLIPIQA",
    options={"variant": "B"},
    weights_env_var="SEMANTIC_IQA_MST_CLIPIQA_PROMPT_WEIGHTS",
    no_weights_help=_MST_HELP.format(metric="mst_clipiqa_prompt", labels="mos_align", variant="B"),
    inputs=("image", "prompt"),
    tiny="semantic_iqa.metrics.mst_clipiqa.tiny:build_tiny",
    result_fields=(_GATE_MEAN,),
)
