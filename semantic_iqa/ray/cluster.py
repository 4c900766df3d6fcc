"""Sizing the actors, and starting or joining a Ray instance (loopback only when local)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ray
import ray.data

from ..errors import ClusterConnectionError, InvalidOptionError
from .address import check_ray_address


@dataclass(frozen=True)
class ActorPlan:
    """How `run_ray_job` sizes its actors.

    Attributes:
        num_actors: scoring actors (each loads the model once).
        num_gpus: GPUs per scoring actor (1, or 0 on a CPU-only cluster).
        num_cpus: CPUs per scoring actor.
        decode_actors: at most this many decoding actors (1 CPU each) before the scoring
            actors; 0 = decoding in the scoring actors.
        threads: torch threads per scoring actor (`None`: Ray's default, one per CPU asked for).
        note: the plan and why, in one line (printed when the job starts).
    """

    num_actors: int
    num_gpus: int
    num_cpus: int
    decode_actors: int
    threads: int | None
    note: str

    @property
    def decode_stage(self) -> bool:
        """Whether images are decoded in a CPU stage before the scoring actors."""
        return self.decode_actors > 0


def plan_actors(cpus: float, gpus: float, num_actors: int | None = None, decode: str = "auto") -> ActorPlan:
    """Size the actor pools for a cluster with `cpus` CPUs and `gpus` GPUs in all.

    The rule:

    - With GPUs: one scoring actor per GPU (`num_gpus=1`, one CPU each). With `decode="auto"`
      the images are decoded by a pool of CPU actors on the CPUs left over: inside the
      scoring actor, decoding would run between the GPU's batches on one core (about 1.1 ms
      per small image measured here, more for photos), so the GPU would wait.
    - CPU only: one scoring actor per CPU, less one CPU kept free. Ray Data runs its own
      tasks (reading, a decode stage) on CPUs too; with every CPU held by a scoring actor they
      never start and the job stalls (checked on 2 CPUs: 2 actors after a Parquet read never
      finished; 1 actor did). The CPU kept free is a scheduling reservation, and its core is
      mostly idle in `run_ray_job` (the items come from the driver's memory, not from read
      tasks), so the actors' torch threads share all the cores: `threads` = CPUs / actors.
      With `decode="auto"` the images are decoded in the scoring actors: measured on 2 CPUs
      (`benchmarks/ray_overhead.py`, tiny model), a decode stage was slower (64 against 130
      pairs/s once running: it takes a core from the scoring actor, and a second pool must
      start), and it sends every image's pixels (588 KiB at 224 px) through the object store.

    `num_actors` lowers the number of scoring actors (never raises it past the rule's limit);
    `decode` is "auto", "actor" or "stage" (a stage needs CPUs besides the scoring actors').
    """
    if decode not in ("auto", "actor", "stage"):
        raise InvalidOptionError(f"decode must be auto, actor or stage, got {decode!r}")
    if num_actors is not None and (not isinstance(num_actors, int) or num_actors < 1):
        raise InvalidOptionError(f"num_actors must be a positive integer, got {num_actors!r}")
    cpus, gpus = int(cpus), int(gpus)
    if gpus >= 1:
        limit, why = gpus, f"one per GPU, {gpus} GPU(s)"
    else:
        limit, why = max(1, cpus - 1), f"one per CPU less one for Ray Data's own tasks, {cpus} CPU(s)"
    actors = min(num_actors or limit, limit)
    if num_actors is not None and num_actors > limit:
        why += f"; {num_actors} asked for"
    spare_cpus = max(0, cpus - actors)  # what the scoring actors leave to Ray Data's tasks and decoding
    stage = decode == "stage" or (decode == "auto" and gpus >= 1)
    if stage and spare_cpus < 1:
        stage, why = False, why + "; no CPU left for a decode stage"
    decode_actors = spare_cpus if stage else 0
    threads = None if gpus >= 1 else max(1, (cpus - decode_actors) // actors)
    decoding = f"decoding by up to {decode_actors} CPU actor(s)" if stage else "decoding in the scoring actors"
    each = "1 GPU" if gpus >= 1 else f"1 CPU and {threads} torch thread(s)"
    note = f"{actors} scoring actor(s) ({why}), {each} each; {decoding}"
    return ActorPlan(actors, 1 if gpus >= 1 else 0, 1, decode_actors, threads, note)


# -- the Ray instance --------------------------------------------------------------------------


def init_local_ray(num_cpus: int | None = None, num_gpus: int | None = None, **init_args: Any) -> None:
    """Start a Ray instance on this machine only, reachable on 127.0.0.1 only, without usage statistics.

    Ray binds its services to the machine's network address unless it believes clusters are
    off (a Ray constant read at import); this sets it for the start, so nothing listens
    beyond the loopback interface. No dashboard; usage statistics off unless the environment
    already chose (`RAY_USAGE_STATS_ENABLED`); the workers' output is not copied to this
    process. `init_args` go to `ray.init` (e.g. `object_store_memory`, `log_to_driver=True`).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray._private import ray_constants

    cluster_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    saved_env = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # for Ray's processes started now
    if cluster_flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False  # for this process, where ray was imported already
    try:
        # The actors' own output (weight-loading bars, Ray's notes on restarted actors) stays in
        # Ray's log files: the job reports progress, failed rows and errors itself.
        args = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False, **init_args}
        ray.init(num_cpus=num_cpus or _cpu_count(), num_gpus=num_gpus, **args)
    finally:
        if cluster_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = cluster_flag
        if saved_env is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved_env


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _connected(address: str | None) -> Iterator[str]:
    """Ray for one job: the instance this process is connected to, the cluster at `address`, or a local one.

    Yields where it runs; what it started or joined, it leaves at the end.
    """
    if ray.is_initialized():
        yield "the connected Ray instance"
        return
    if address:
        check_ray_address(address)  # seconds, where ray.init would retry an unreachable address for minutes
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as exc:  # "auto" with no cluster on this machine, a head that went away
            raise ClusterConnectionError(f"--ray-address {address}: {exc}") from None
        where = f"the Ray cluster at {address}"
    else:
        init_local_ray()
        where = "a local Ray instance"
    try:
        yield where
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """No Ray Data progress bars or execution banners: the job prints its own progress."""
    context = ray.data.DataContext.get_current()
    names = ("enable_progress_bars", "print_on_execution_start")  # the second is newer than some Ray 2.x
    saved = {name: getattr(context, name) for name in names if hasattr(context, name)}
    # "ray.data": its execution notes (INFO); its progress module: a warning that bars are off.
    loggers = {logging.getLogger("ray.data"): logging.WARNING, logging.getLogger("ray.data._internal.progress"): 100}
    levels = {logger: logger.level for logger in loggers}
    for name in saved:
        setattr(context, name, False)
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        for logger, level in levels.items():
            logger.setLevel(level)


# -- the job -----------------------------------------------------------------------------------
