"""`--ray-address`: a wrong address fails in seconds with one typed line, never minutes of Ray retries.

No Ray instance is started: every address here is refused before `ray.init`. Nothing is
sent anywhere but 127.0.0.1 (`.invalid` names never resolve: RFC 6761).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra")

from semantic_iqa.cli import main  # noqa: E402
from semantic_iqa.errors import ClusterConnectionError, InvalidOptionError  # noqa: E402
from semantic_iqa.ray.address import check_ray_address, parse_ray_address  # noqa: E402

LIMIT_S = 30  # the bound, for the command as a whole


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    for side in ("ref", "dist"):
        (root / side).mkdir()
        Image.new("RGB", (32, 24), (90, 120, 30)).save(root / side / "a.png")
    return root / "ref", root / "dist"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def listener(reply: bytes | None) -> Iterator[int]:
    """A loopback TCP server that is not a Ray head: it answers `reply` (an HTTP server) or stays silent."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                if reply is not None:
                    connection.recv(1024)
                    connection.sendall(reply)
                else:
                    stop.wait(5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.mark.parametrize(
    "address,kind,host,port",
    [
        ("auto", "auto", "", 0),
        ("head:6379", "gcs", "head", 6379),
        (" 10.0.0.7:6380 ", "gcs", "10.0.0.7", 6380),
        ("[::1]:6379", "gcs", "::1", 6379),
        ("ray://head", "client", "head", 10001),
        ("ray://head.example.org:10002", "client", "head.example.org", 10002),
    ],
)
def test_the_documented_forms_are_taken(address, kind, host, port):
    parsed = parse_ray_address(address)
    assert (parsed.kind, parsed.host, parsed.port) == (kind, host, port)


@pytest.mark.parametrize(
    "address,message",
    [
        ("garbage", "no port"),
        ("", "give auto, HOST:PORT"),
        ("head:port", "must be a number"),
        ("head:70000", "must be a number"),
        ("head:0", "port 0"),
        ("http://head:8265", "dashboard"),
        ("https://head:8265", "dashboard"),
        ("redis://head:6379", "unknown scheme"),
        ("local", "leave --ray-address out"),
        ("head:6379/jobs", "not a host and port"),
        ("user@head:6379", "not a host and port"),
        ("he ad:6379", "not a host and port"),
    ],
)
def test_other_forms_are_refused_by_name(address, message):
    with pytest.raises(InvalidOptionError, match=message) as refused:
        check_ray_address(address)
    assert "--ray-address" in str(refused.value)


@pytest.mark.parametrize("address", ["127.0.0.1:{closed}", "localhost:{closed}", "nonexistent.invalid:6379"])
def test_an_unreachable_address_fails_in_seconds(address):
    address = address.format(closed=closed_port())
    start = time.monotonic()
    with pytest.raises(ClusterConnectionError, match="check") as refused:
        check_ray_address(address)
    assert time.monotonic() - start < 10
    assert address in str(refused.value)
    assert ("cannot be resolved" if "invalid" in address else "cannot connect") in str(refused.value)


def test_a_web_server_or_a_silent_port_is_not_taken_for_a_ray_head():
    with listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        with pytest.raises(ClusterConnectionError, match="not a Ray head.*8265"):
            check_ray_address(f"127.0.0.1:{port}")
    with listener(None) as port:
        start = time.monotonic()
        with pytest.raises(ClusterConnectionError, match="not a Ray head"):
            check_ray_address(f"ray://127.0.0.1:{port}", timeout=0.5)
        assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    "address,message",
    [
        ("garbage", "no port"),
        ("http://127.0.0.1:8265", "dashboard"),
        ("nonexistent.invalid:6379", "cannot be resolved"),
    ],
)
def test_score_dir_refuses_a_wrong_address_with_one_line(tiny_dir, folders, tmp_path, capsys, address, message):
    out = tmp_path / "o.parquet"
    argv = ["score-dir", *map(str, folders), "--out", str(out), "--weights", str(tiny_dir), "--engine", "ray"]
    start = time.monotonic()
    assert main([*argv, "--ray-address", address]) == 2
    assert time.monotonic() - start < LIMIT_S
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and address in lines[0], lines
    assert not out.exists()


def test_the_command_with_a_closed_port_exits_within_30_s(tiny_dir, folders, tmp_path):
    """The whole command, as a user runs it: before the fix it printed Ray's warnings for minutes."""
    address = f"127.0.0.1:{closed_port()}"
    argv = ["score-dir", *map(str, folders), "--out", str(tmp_path / "o.parquet"), "--weights", str(tiny_dir)]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "semantic_iqa.cli", *argv, "--engine", "ray", "--ray-address", address],
        capture_output=True,
        text=True,
        timeout=LIMIT_S + 30,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert time.monotonic() - start < LIMIT_S
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "cannot connect" in lines[0], done.stderr
