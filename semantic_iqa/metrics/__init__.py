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
    )
)
