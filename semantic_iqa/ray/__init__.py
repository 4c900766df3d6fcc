"""The same scoring job on a Ray cluster: `semantic-iqa score-dir ... --engine ray [--ray-address ADDR]`.

`ray` is an optional extra (`pip install "semantic-iqa[ray]"`); the core never imports this
package. Two ways to use it:

- `run_ray_job(info, weights, options, items, out, ...)`: what `score-dir --engine ray` runs.
  Items go through `ray.data` to scoring actors that load the model once each; the driver
  writes the rows (Parquet parts, merged into `out`), with the local engine's columns, job
  sidecar and model fingerprint, so either engine can resume the other's result. Without an
  address a local Ray instance is started on 127.0.0.1 only (no dashboard, no usage stats).
- `PairScorer` in your own pipeline::

      from semantic_iqa.ray import PairScorer
      scored = dataset.map_batches(
          PairScorer,
          fn_constructor_kwargs={"metric": NAME, "weights": "my-weights", "options": {...}},
          concurrency=4, num_gpus=1, batch_size=32, batch_format="pandas",
      )

  Input batches hold the metric's path columns (`ref`, `dist`, or `image` [+ `prompt`]); the
  output adds `score`, `status` (`ok` or the error: failed rows are kept, never dropped) and
  the metric's declared result fields, flattened as in the local engine's result table.

Sizing (`plan_actors`): one scoring actor per GPU; on CPU-only nodes one per CPU less one
kept free, since with 2 CPUs and 2 actors Ray Data starves its read stage and stalls.
Decoding happens in the scoring actor on CPU-only nodes and in a CPU actor pool before the
scorer when GPUs do the scoring (measured in `benchmarks/ray_overhead.py`).
"""

from .cluster import ActorPlan, init_local_ray, plan_actors
from .engine import run_ray_job
from .scorer import ImageDecoder, PairScorer, decode_images

__all__ = ["ActorPlan", "ImageDecoder", "PairScorer", "decode_images", "init_local_ray", "plan_actors", "run_ray_job"]
