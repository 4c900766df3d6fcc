"""DreamSim's registry entry (setup.cfg's entry point names `DREAMSIM`).

Plain Python: the command line reads it to build its flags without importing torch.
"""

from ...registry import MetricInfo

DREAMSIM = MetricInfo(
    name="dreamsim",
    title="DreamSim",
    kind="FR",
    higher_is_better=False,
    score_range=(0.0, 2.0),
    summary="perceptual distance of two images (DINO + CLIP + OpenCLIP ViTs with LoRA); lower = more similar",
    target="semantic_iqa.metrics.dreamsim:DreamSim",
    weights_env_var="SEMANTIC_IQA_DREAMSIM_WEIGHTS",
    no_weights_help=(
        "Convert the authors' release (MIT licence): download dreamsim_ensemble_checkpoint.zip from "
        "https://github.com/ssundaram21/dreamsim/releases, then "
        "`semantic-iqa convert-dreamsim dreamsim_ensemble_checkpoint.zip --out dreamsim-weights` "
        "and pass weights= (Python) or --weights (CLI) that folder, or set $SEMANTIC_IQA_DREAMSIM_WEIGHTS"
    ),
    inputs=("ref", "dist"),
    embeddings=(
        "the branches' features concatenated, centred and L2-normalised (unit norm): "
        "1 - a @ b is the DreamSim distance of two images"
    ),
    tiny="semantic_iqa.metrics.dreamsim.tiny:build_tiny",
)
