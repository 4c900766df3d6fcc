"""The built-in metrics: one sub-package each, and one registry line each, below."""

from ..registry import HubWeights, MetricInfo, register_metric

DSS_SQA = register_metric(
    MetricInfo(
        name="dss_sqa",
        title="DSS-SQA",
        kind="FR",
        higher_is_better=True,
        score_range=(0.0, 5.0),
        summary="does the distorted image still mean the same as its reference? (DINOv3 + CLIP, 5 folds, gate)",
        target="semantic_iqa.metrics.dss_sqa:DSSSQA",
        # Where the published weights will be, pinned. This repo does not exist yet: until it
        # does, loading without weights raises NoPublishedWeightsError with `no_weights_help`.
        default_weights=HubWeights("semantic-iqa/dss-sqa-lovif2026", "v1.0"),
        weights_env_var="SEMANTIC_IQA_WEIGHTS",
        no_weights_help=(
            "Get weights in one of three ways: "
            "(1) train the heads on the LoViF train split from the public backbones: "
            "`semantic-iqa train --data LoViF/Train --out my-weights`; "
            "(2) convert the authors' fold checkpoints: "
            "`semantic-iqa convert-siqav3 fold_*/checkpoints/best.pth --out my-weights`; "
            "(3) point weights= (Python), --weights (CLI) or $SEMANTIC_IQA_WEIGHTS at a weights folder or Hub repo id"
        ),
        inputs=("ref", "dist"),
        option_settings={"gate": "gate.mode"},  # `gate=None` scores with the folder's `gate.mode`
    )
)

_MST_HELP = (
    "The authors released no weights. Get weights in one of three ways: "
    "(1) train on AGIQA-3K from the public CLIP backbones: "
    "`semantic-iqa train --metric {metric} --data AGIQA-3K --labels {labels} --out my-weights`; "
    "(2) convert an authors'-format checkpoint: "
    "`semantic-iqa convert-mst-clipiqa best_model_variant_{variant}.pth --variant {variant} --out my-weights`; "
    "(3) pass weights= (Python) or --weights (CLI) a weights folder or Hub repo id"
)
MST_CLIPIQA = register_metric(
    MetricInfo(
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
    )
)
MST_CLIPIQA_PROMPT = register_metric(
    MetricInfo(
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
    )
)
