"""The Ray Data engine (`semantic_iqa.ray`) on a local Ray instance: same scores as the local
engine, with images decoded in the scoring actors or in a decode stage (the default on GPU
clusters), a killed scoring actor loses and repeats nothing, an interrupted job resumes from
its Parquet parts, and resume refuses another model's results.

About 2 to 3 minutes on 2 CPUs: most of it is starting actors (~8 s each: importing torch and
the model code; each job starts its own) and the 1,200-pair job (one scoring actor with both
cores, ~100 pairs/s).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra")
pytest.importorskip("ray.data", reason="the Ray engine needs ray[data]")
pq = pytest.importorskip("pyarrow.parquet")

import torch  # noqa: E402

from semantic_iqa import create_metric  # noqa: E402
from semantic_iqa.errors import InvalidInputError  # noqa: E402
from semantic_iqa.jobs import JobInterrupted, run_job  # noqa: E402
from semantic_iqa.jobs.tables import parts_dir  # noqa: E402
from semantic_iqa.metrics.dss_sqa.tiny import make_tiny  # noqa: E402
from semantic_iqa.ray import PairScorer, decode_images, init_local_ray, plan_actors, run_ray_job  # noqa: E402
from semantic_iqa.registry import metric_info  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")  # Ray Data's own settings

DSS = metric_info("dss_sqa")
DISTINCT_PAIRS = 250  # image files; the job's ids cycle over them (the reference scores cost 250 pairs, not 2,000)
JOB_PAIRS = 1200  # enough blocks that the kill lands mid-stream with more in flight


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """One local Ray instance (2 CPUs, loopback only) for the module; jobs use it and leave it running."""
    init_local_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """250 small (24x32) random references, each with a noisier copy as its distortion."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    pairs = []
    for index in range(DISTINCT_PAIRS):
        ref = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        noise = rng.integers(-60, 61, size=ref.shape)
        dist = np.clip(ref.astype(int) + noise * (index % 4), 0, 255).astype(np.uint8)
        paths = (root / f"ref_{index:03d}.png", root / f"dist_{index:03d}.png")
        Image.fromarray(ref).save(paths[0])
        Image.fromarray(dist).save(paths[1])
        pairs.append((str(paths[0]), str(paths[1])))
    return pairs


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def reference_scores(tiny_dir: Path, pair_files: list[tuple[str, str]]) -> Callable[[int], list[float]]:
    """The local scoring (`predict`) of each distinct pair, with as many torch threads as the actor that scored it.

    float32 sums split over another number of threads round differently, and the tiny
    model's large head gains turn that into score differences of ~4e-5: more than the 1e-5
    checked here, and not a difference between the engines.
    """
    model = create_metric("dss_sqa", tiny_dir, device="cpu")
    scores: dict[int, list[float]] = {}

    def with_threads(count: int) -> list[float]:
        if count not in scores:
            with torch_threads(count):
                output = model.predict([ref for ref, _ in pair_files], [dist for _, dist in pair_files])
            scores[count] = output.score.tolist()
        return scores[count]

    return with_threads


def job_items(pair_files: list[tuple[str, str]], count: int, prefix: str) -> list[dict[str, str]]:
    """`count` items cycling over the distinct pairs; item i is pair i % 250."""
    return [
        {
            "id": f"{prefix}{index:05d}",
            "ref": pair_files[index % DISTINCT_PAIRS][0],
            "dist": pair_files[index % DISTINCT_PAIRS][1],
        }
        for index in range(count)
    ]


def check_scores(table_rows: list[dict], reference: list[float], prefix: str) -> None:
    for row in table_rows:
        if row["status"] == "ok":
            expected = reference[int(row["id"][len(prefix) :]) % DISTINCT_PAIRS]
            assert abs(row["score"] - expected) <= 1e-5, (row["id"], row["score"], expected)


def actor_pids(stage: str) -> list[int]:
    """Processes of Ray Data's actors running `stage` alone (Ray titles them `ray::MapWorker(MapBatches(<stage>))...`).

    Stages fused into one actor get a joined title (`MapBatches(A)->MapBatches(B)`), which this does not match.
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"ray::MapWorker(MapBatches({stage}))") and _descends_from_us(int(entry)):
            pids.append(int(entry))
    return pids


def _descends_from_us(pid: int) -> bool:
    """Whether `pid` was started (through the raylet) by this test process: another pytest run's
    Ray actors on the same machine (parallel sessions, a second checkout) must not be counted."""
    ours = os.getpid()
    while pid > 1:
        if pid == ours:
            return True
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
                pid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def scorer_pids() -> list[int]:
    """Processes of Ray Data's scoring actors."""
    return actor_pids("PairScorer")


# -- sizing --------------------------------------------------------------------------------------


def test_actor_plan_keeps_a_cpu_free_and_gives_each_gpu_an_actor() -> None:
    two_cpus = plan_actors(2, 0)
    assert (two_cpus.num_actors, two_cpus.num_gpus, two_cpus.decode_stage, two_cpus.threads) == (1, 0, False, 2)
    assert plan_actors(2, 0, num_actors=2).num_actors == 1  # 2 actors on 2 CPUs stall Ray Data's reading
    assert plan_actors(1, 0).num_actors == 1
    assert plan_actors(1, 0, decode="stage").decode_stage is False  # no CPU left to decode on
    assert (plan_actors(2, 0, decode="stage").decode_actors, plan_actors(2, 0, decode="stage").threads) == (1, 1)
    assert (plan_actors(16, 0).num_actors, plan_actors(16, 0).threads) == (15, 1)
    gpus = plan_actors(64, 8)
    assert (gpus.num_actors, gpus.num_gpus, gpus.decode_actors, gpus.threads) == (8, 1, 56, None)
    assert plan_actors(64, 8, num_actors=2).num_actors == 2
    assert plan_actors(8, 8).decode_stage is False
    with pytest.raises(ValueError):
        plan_actors(4, 0, decode="gpu")


def test_local_ray_listens_on_loopback_only(ray_instance: None) -> None:
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray.util.get_node_ip_address() == "127.0.0.1"


def test_a_real_ray_head_passes_the_address_check(ray_instance: None) -> None:
    """`--ray-address` is probed before `ray.init` (tests/test_ray_address.py); a real GCS must pass it."""
    from semantic_iqa.ray.address import check_ray_address

    address = ray.get_runtime_context().gcs_address  # the local instance's GCS, on 127.0.0.1
    assert check_ray_address(address).port == int(address.rsplit(":", 1)[1])


# -- the scorer as a plain callable (no Ray actors: any batch format, failures kept) -------------


def test_pair_scorer_takes_numpy_pandas_and_decoded_batches(
    tiny_dir: Path, pair_files: list[tuple[str, str]], reference_scores: Callable[[int], list[float]]
) -> None:
    import pandas as pd

    scorer = PairScorer(metric="dss_sqa", weights=str(tiny_dir), options={}, device="cpu")
    refs = [pair_files[i][0] for i in range(3)] + [pair_files[0][0]]
    dists = [pair_files[i][1] for i in range(3)] + ["/no/such/image.png"]
    batch = {"ref": np.array(refs), "dist": np.array(dists), "caption": np.array(["a", "b", "c", "d"])}
    with torch_threads(1):
        outputs = [
            scorer(batch),
            scorer(pd.DataFrame(batch)),
            scorer(decode_images(batch, scorer.transform, ["ref", "dist"])),  # pixels from a CPU stage
        ]
    for table in outputs:
        assert table.column_names[:3] == ["ref", "dist", "caption"]  # input columns kept, pixels dropped
        rows = table.to_pylist()
        assert [row["status"] for row in rows[:3]] == ["ok"] * 3
        assert [row["score"] for row in rows[:3]] == pytest.approx(reference_scores(1)[:3], abs=1e-5)
        assert rows[3]["score"] is None and rows[3]["gated"] is None and "/no/such/image.png" in rows[3]["status"]
        assert {"fold_std", "cos_sim", "gated", "fold_0", "fold_4"} <= set(table.column_names)


def test_pair_scorer_reference_cache_encodes_a_reference_once(
    tiny_dir: Path, pair_files: list[tuple[str, str]], reference_scores: Callable[[int], list[float]]
) -> None:
    scorer = PairScorer(weights=str(tiny_dir), device="cpu", reference_cache=8)
    batch = {"ref": np.array([pair_files[0][0]] * 3), "dist": np.array([pair_files[0][1]] * 3)}
    with torch_threads(1):
        first, again = scorer(batch).to_pylist(), scorer(batch).to_pylist()
    assert [row["score"] for row in first + again] == pytest.approx([reference_scores(1)[0]] * 6, abs=1e-5)
    assert (scorer.reference_cache.misses, len(scorer.reference_cache)) == (1, 1)
    with pytest.raises(ValueError, match="no reference-feature cache"):
        PairScorer(metric="mst_clipiqa", device="cpu", reference_cache=8)


# -- jobs on Ray -----------------------------------------------------------------------------------


def test_killed_actor_loses_and_repeats_nothing(
    ray_instance: None,
    tiny_dir: Path,
    pair_files: list[tuple[str, str]],
    reference_scores: Callable[[int], list[float]],
    tmp_path: Path,
) -> None:
    items = job_items(pair_files, JOB_PAIRS, "k")
    items[7]["dist"] = str(tmp_path / "missing.png")  # failed rows are kept, with their error
    (tmp_path / "broken.png").write_text("not an image")
    items[900]["ref"] = str(tmp_path / "broken.png")
    killed: list[int] = []

    def kill_the_scorer(saved: int, total: int) -> None:
        if not killed and saved >= total // 3:
            pids = scorer_pids()
            assert len(pids) == 1, pids  # one scoring actor on 2 CPUs
            os.kill(pids[0], signal.SIGKILL)
            killed.append(saved)

    out = tmp_path / "scores.parquet"
    summary = run_ray_job(DSS, str(tiny_dir), {}, items, out, batch_size=32, progress=False, on_rows=kill_the_scorer)

    assert killed and killed[0] < JOB_PAIRS
    rows = pq.read_table(out).to_pylist()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == JOB_PAIRS and set(ids) == {item["id"] for item in items}
    assert (summary["ok"], summary["failed"], summary["engine"]) == (JOB_PAIRS - 2, 2, "ray")
    by_id = {row["id"]: row for row in rows}
    assert by_id["k00007"]["score"] is None and "missing.png" in by_id["k00007"]["status"]
    assert by_id["k00900"]["score"] is None and "broken.png" in by_id["k00900"]["status"]
    check_scores(rows, reference_scores(plan_actors(2, 0).threads), "k")  # 2 threads: the actor has both cores
    assert not parts_dir(out).exists()  # merged into `out`


@contextlib.contextmanager
def watch_actors(stages: tuple[str, ...]) -> Iterator[dict[str, set[int]]]:
    """The pids of each stage's actors seen while the block runs (sampled every 0.1 s: actors may stop early).

    Actors already alive when the block starts (an earlier test's, not yet reaped) are left out.
    """
    seen: dict[str, set[int]] = {stage: set() for stage in stages}
    before = {stage: set(actor_pids(stage)) for stage in stages}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            for stage in stages:
                seen[stage].update(set(actor_pids(stage)) - before[stage])

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def test_decode_stage_scores_as_the_actors_decoding(
    ray_instance: None,
    tiny_dir: Path,
    pair_files: list[tuple[str, str]],
    reference_scores: Callable[[int], list[float]],
    tmp_path: Path,
) -> None:
    """`decode="stage"` (the default with GPUs): a pool of CPU actors decodes, the scoring actor gets pixels.

    Same scores as the local engine, and an image that cannot be decoded in the stage is that row's error.
    """
    items = job_items(pair_files, 96, "s")  # two blocks of 64 rows at batch size 16
    items[5]["dist"] = str(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_text("not an image")
    items[70]["ref"] = str(tmp_path / "broken.png")
    out, messages = tmp_path / "scores.parquet", io.StringIO()
    with watch_actors(("ImageDecoder", "PairScorer")) as seen:
        summary = run_ray_job(
            DSS, str(tiny_dir), {}, items, out, batch_size=16, progress=False, decode="stage", stream=messages
        )

    assert "1 scoring actor(s)" in messages.getvalue() and "decoding by up to 1 CPU actor(s)" in messages.getvalue()
    # Decoding ran in actors of its own: fused into the scoring actors, neither title would match.
    assert seen["ImageDecoder"] and len(seen["PairScorer"]) == 1, seen
    assert not seen["ImageDecoder"] & seen["PairScorer"]
    assert (summary["ok"], summary["failed"]) == (len(items) - 2, 2)
    by_id = {row["id"]: row for row in pq.read_table(out).to_pylist()}
    assert len(by_id) == len(items)
    assert by_id["s00005"]["score"] is None and "missing.png" in by_id["s00005"]["status"]
    assert by_id["s00070"]["score"] is None and "broken.png" in by_id["s00070"]["status"]
    check_scores(list(by_id.values()), reference_scores(1), "s")  # 1 thread: the decoder has the other core
    assert sum(row["status"] == "ok" for row in by_id.values()) == len(items) - 2


# About 25 s on 2 CPUs (two jobs, each starting its scoring actor); a driver SIGKILL's leftover parts.
def test_interrupted_job_resumes_from_its_parts(
    ray_instance: None,
    tiny_dir: Path,
    pair_files: list[tuple[str, str]],
    reference_scores: Callable[[int], list[float]],
    tmp_path: Path,
) -> None:
    """A job stopped after some parts were written (driver killed: parts only) resumes, each item once."""
    items = job_items(pair_files, 160, "r")  # blocks of 64 rows at batch size 16: stopped after the first
    out = tmp_path / "scores.parquet"
    parts_at_stop = tmp_path / "parts-at-stop"

    def stop(saved: int, total: int) -> None:
        if saved >= 48 and list(parts_dir(out).glob("part-*.parquet")):
            shutil.copytree(parts_dir(out), parts_at_stop)  # what a killed driver would leave
            raise KeyboardInterrupt

    with pytest.raises(JobInterrupted) as stopped:
        run_ray_job(DSS, str(tiny_dir), {}, items, out, batch_size=16, progress=False, on_rows=stop)
    assert 48 <= stopped.value.done < len(items)
    assert pq.read_table(out).num_rows == stopped.value.done  # Ctrl-C: what arrived is saved

    # The state a SIGKILL of the driver leaves: whole part files, no merged result.
    out.unlink()
    shutil.copytree(parts_at_stop, parts_dir(out))
    in_parts = {row["id"] for path in parts_at_stop.glob("*.parquet") for row in pq.read_table(path).to_pylist()}
    assert 0 < len(in_parts) <= stopped.value.done

    summary = run_ray_job(DSS, str(tiny_dir), {}, items, out, resume=True, batch_size=16, progress=False)
    assert summary["skipped"] == len(in_parts) and summary["ok"] == len(items)
    rows = pq.read_table(out).to_pylist()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == len(items)
    check_scores(rows, reference_scores(2), "r")  # both runs: 1 actor with both cores


def test_resume_refuses_another_models_results_and_accepts_the_local_engines(
    tiny_dir: Path, pair_files: list[tuple[str, str]], tmp_path: Path
) -> None:
    items = job_items(pair_files, 4, "m")
    out = tmp_path / "scores.parquet"
    run_job(DSS, create_metric("dss_sqa", tiny_dir, device="cpu"), items, out, weights_folder=tiny_dir, progress=False)

    # Same model: everything is done already, so no Ray is started.
    summary = run_ray_job(DSS, str(tiny_dir), {}, items, out, resume=True, progress=False)
    assert (summary["skipped"], summary["ok"]) == (4, 4)

    other = make_tiny(tmp_path / "other", seed=1)
    with pytest.raises(InvalidInputError, match="another model"):
        run_ray_job(DSS, str(other), {}, items, out, resume=True, progress=False)
    with pytest.raises(InvalidInputError, match="another model"):  # options are part of the fingerprint
        run_ray_job(DSS, str(tiny_dir), {"gate": "off"}, items, out, resume=True, progress=False)
    with pytest.raises(InvalidInputError, match="--resume"):
        run_ray_job(DSS, str(tiny_dir), {}, items, out, progress=False)  # neither resume nor overwrite


def test_resume_is_locked_and_repairs_duplicates_and_dropped_items_without_starting_ray(
    tiny_dir: Path, pair_files: list[tuple[str, str]], tmp_path: Path
) -> None:
    """The Ray engine plans resume like the local one (tests/test_job_files.py): one writer, one row per id."""
    import subprocess
    import sys

    from semantic_iqa.errors import ResultLockedError
    from semantic_iqa.jobs.lock import lock_path

    items = job_items(pair_files, 4, "d")
    out = tmp_path / "scores.csv"
    run_job(DSS, create_metric("dss_sqa", tiny_dir, device="cpu"), items, out, weights_folder=tiny_dir, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines + lines[1:3]))  # two rows written twice

    hold = "import sys, time, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print(1, flush=True)"
    hold += "; time.sleep(99)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock_path(out))], stdout=subprocess.PIPE)
    try:
        holder.stdout.readline()  # another run holds the result now
        with pytest.raises(ResultLockedError, match="another run"):
            run_ray_job(DSS, str(tiny_dir), {}, items, out, resume=True, progress=False)
    finally:
        holder.kill()
        holder.wait()

    # Nothing left to score (so no Ray): item d00003 left the job, and `gate=hard` is the default spelt out.
    summary = run_ray_job(DSS, str(tiny_dir), {"gate": "hard"}, items[:3], out, resume=True, progress=False)
    assert (summary["skipped"], summary["ok"], summary["total"]) == (3, 3, 3)
    assert sorted(line.split(",")[0] for line in out.read_text().splitlines()[1:]) == ["d00000", "d00001", "d00002"]
