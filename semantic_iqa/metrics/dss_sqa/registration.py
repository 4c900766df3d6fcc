"""DSS-SQA's registry entry: what it is, as data (its entry point in setup.cfg names `DSS_SQA`).

Plain Python: the command line reads it to build its flags without importing torch.
"""

from ...contract import MetricOption, ResultField
from ...registry import HubWeights, MetricInfo

DSS_SQA = MetricInfo(
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
    package_default=True,  # what `semantic-iqa score a.png b.png` and `semantic_iqa.score(a, b)` use
    tiny="semantic_iqa.metrics.dss_sqa.tiny:build_tiny",
    scoring_options=(
        MetricOption(
            "gate",
            str,
            choices=("hard", "soft", "off"),
            help="semantic gate: hard (veto a pair whose meaning changed), soft, or off; default: the weights' own",
            setting="gate.mode",
            label="gate mode",  # `gate=None` scores with the folder's `gate.mode`
            for_gradients="off",  # the hard gate is flat: gradients (explanation maps) run without it
        ),
    ),
    loss_options=(
        MetricOption(
            "gate_penalty",
            float,
            default=5.0,
            help="weight of the CLIP-cosine penalty that replaces the gate in the loss (0 turns it off)",
        ),
    ),
    # pyiqa names: the hard gate (the reference behaviour, whatever the weights' default) and
    # the soft gate, which has no cliff in the score at the gate threshold.
    pyiqa_presets={"dss_sqa": {"gate": "hard"}, "dss_sqa_soft": {"gate": "soft"}},
    result_fields=(
        ResultField("fold_scores", "floats", "each cross-validated head's score, in [0, 5]", column_prefix="fold"),
        ResultField(
            "fold_std",
            "float",
            "spread of the fold scores (0 = the heads agree): an uncertainty",
            in_report=True,
            label="fold spread",
        ),
        ResultField(
            "cos_sim",
            "float",
            "CLIP cosine of the reference and the distorted image, in [-1, 1]",
            in_report=True,
            label="cos",
        ),
        ResultField(
            "gated",
            "bool",
            "True where the semantic gate changed the pair's score (its meaning changed)",
            in_report=True,
            flag="Pairs the semantic gate vetoed",  # the report's section title
            label="gate",
            states=("passed", "VETOED"),
        ),
    ),
)
