"""The published figures the benchmark shows beside ours (never computed here), and the data sets' fixed keys.

Sources: the datasets reference page (shared/reference/datasets.md): BAPPS (LPIPS paper, the
DSS-SQA authors' piq figures and blog), LoViF (the challenge report), NIGHTS (DreamSim README).
"""

from __future__ import annotations

BAPPS_SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
OVERALL = "overall (mean of subsets)"  # the unweighted mean of the six subsets
# Human agreement on BAPPS val 2AFC, the ceiling a metric can reach. Source: the datasets
# reference page (shared/reference/datasets.md, "Human ceiling (LPIPS paper)"), i.e. Zhang,
# Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep Features as a
# Perceptual Metric", CVPR 2018 (the BAPPS paper). Only these four figures are given there.
HUMAN_2AFC = "human (LPIPS paper)"
# Published 2AFC figures (soft agreement, %) on BAPPS val, from the datasets reference page.
PUBLISHED_2AFC = {
    HUMAN_2AFC: {"traditional": 80.8, "cnn": 84.4, "superres": 73.4, "overall": 73.9},
    "SSIM (piq, DSS-SQA authors)": {
        "traditional": 58.1,
        "cnn": 78.1,
        "superres": 61.1,
        "deblur": 58.4,
        "color": 57.0,
        "frameinterp": 55.2,
        "mean of six": 61.3,
    },
    "LPIPS-VGG (piq, DSS-SQA authors)": {
        "traditional": 71.4,
        "cnn": 81.4,
        "superres": 69.0,
        "deblur": 57.3,
        "color": 58.8,
        "frameinterp": 62.7,
        "mean of six": 66.8,
    },
    "DISTS (piq, DSS-SQA authors)": {
        "traditional": 74.9,
        "cnn": 81.3,
        "superres": 69.2,
        "deblur": 59.9,
        "color": 61.5,
        "frameinterp": 62.7,
        "mean of six": 68.3,
    },
    "DSS-SQA (authors' blog)": {"traditional": 73.9, "cnn": 79.6, "superres": 65.5, "overall": 65.0},
}
# The row of ours each published figure is comparable with (same metric; piq rows: same implementation).
PUBLISHED_2AFC_METRIC = {
    "SSIM (piq, DSS-SQA authors)": "SSIM",
    "LPIPS-VGG (piq, DSS-SQA authors)": "LPIPS-VGG",
    "DISTS (piq, DSS-SQA authors)": "DISTS",
    "DSS-SQA (authors' blog)": "DSS-SQA",
}
PUBLISHED_LOVIF_TEST = {"DSS-SQA (challenge report, test)": {"srocc": 0.8503, "plcc": 0.8418, "final": 0.8469}}

# NIGHTS 2AFC (%) of the authors' released DreamSim models, from the README of dreamsim 0.2.1
# (the table "how they perform on NIGHTS"). `metric` and `variant` name the row of ours each
# figure is comparable with (a DreamSim row carries its model type); `None`: a model we do not have.
PUBLISHED_NIGHTS = tuple(
    {
        "source": f"DreamSim {variant} (DreamSim README)",
        "metric": metric,
        "variant": variant,
        "figures": {"val": val, "test": test},
    }
    for variant, metric, val, test in (
        ("ensemble", "DreamSim", 96.9, 96.2),
        ("dino_vitb16", "DreamSim", 95.6, 94.8),
        ("open_clip_vitb32", "DreamSim", 95.6, 95.3),
        ("clip_vitb32", "DreamSim", 94.9, 93.6),
        ("dinov2_vitb14", None, 94.9, 95.0),
    )
)


def published() -> dict:
    """The published figures, as results.json carries them (so plots need nothing but that file)."""
    return {
        "bapps_2afc": [
            {"source": source, "metric": PUBLISHED_2AFC_METRIC.get(source), "figures": figures}
            for source, figures in PUBLISHED_2AFC.items()
            if source != HUMAN_2AFC
        ],
        "bapps_human": {"source": HUMAN_2AFC, "figures": PUBLISHED_2AFC[HUMAN_2AFC]},
        "lovif_test": PUBLISHED_LOVIF_TEST,
        "nights_2afc": [dict(entry) for entry in PUBLISHED_NIGHTS],
    }
