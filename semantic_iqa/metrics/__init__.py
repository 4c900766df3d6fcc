"""The built-in metrics: one sub-package each.

Each declares its registry entry in its `registration` module, and setup.cfg lists it under
the entry-point group `semantic_iqa.metrics`, exactly as a third-party plug-in does
(docs/adding-a-metric.md). Nothing here is imported by the shared layers.
"""
