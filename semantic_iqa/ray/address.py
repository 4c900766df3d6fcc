"""`--ray-address`: checked before Ray is asked to join anything, so a wrong one fails in seconds.

`ray.init(address=...)` given a port where nothing listens, or a host that does not resolve,
retries for minutes (measured with Ray 2.60: three ~40 s rounds of "Failed to connect to GCS"
warnings, still going at two minutes). `check_ray_address` fails in at most about
`3 * timeout` seconds instead (resolving, connecting, the answer), with one typed error
naming the address and what to check:

1. the syntax: `auto` (the cluster started on this machine with `ray start`), `HOST:PORT`
   (the head's GCS port, 6379 by default), or `ray://HOST[:PORT]` (Ray Client, port 10001 by
   default). An `http(s)://` URL is the dashboard / job-submission address (port 8265): not an
   address to join, and refused with that said. Anything else is refused.
2. the host resolves (in a helper thread, so a slow resolver cannot stall past `timeout`);
3. a TCP connection opens within `timeout`;
4. what answers speaks gRPC (both the GCS and the Ray Client server do): it answers the
   HTTP/2 connection preface with a SETTINGS frame. A web server (the dashboard's port given
   as HOST:8265) does not, and Ray would otherwise retry it for minutes too. With Ray's TLS on
   (`RAY_USE_TLS`) the server expects a TLS handshake first, so this step is skipped.

Only the address given is contacted, once, and the connection is closed at once.
"""

from __future__ import annotations

import os
import socket
import string
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ClusterConnectionError, InvalidOptionError

CLIENT_PORT = 10001  # Ray Client's default (`ray start --ray-client-server-port`)
DEFAULT_TIMEOUT_S = 5.0
_FORMS = "auto, HOST:PORT (the head's GCS port, 6379 by default) or ray://HOST:10001 (Ray Client)"
_HOST_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._:")  # names, IPv4 and IPv6
# The client's side of an HTTP/2 connection (RFC 9113, section 3.4): the preface, then an empty SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


@dataclass(frozen=True)
class RayAddress:
    """A parsed `--ray-address`: `kind` is "auto", "gcs" (HOST:PORT) or "client" (ray://)."""

    text: str
    kind: str
    host: str = ""
    port: int = 0


def parse_ray_address(address: str) -> RayAddress:
    """The address's form, host and port, or `InvalidOptionError` saying which forms are taken.

    No network: syntax only.
    """
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise InvalidOptionError(f"--ray-address {address!r}: give {_FORMS}")
    if text == "auto":
        return RayAddress(text, "auto")
    if text == "local":
        raise InvalidOptionError("--ray-address local: leave --ray-address out to start a local Ray instance")
    scheme, separator, rest = text.partition("://")
    if separator and scheme.lower() in ("http", "https"):
        raise InvalidOptionError(
            f"--ray-address {text}: an http URL is the Ray dashboard's / job submission address (port 8265), "
            f"not one to join; give {_FORMS}"
        )
    if separator and scheme.lower() != "ray":
        raise InvalidOptionError(f"--ray-address {text}: unknown scheme {scheme}://; give {_FORMS}")
    kind = "client" if separator else "gcs"
    host, port = _host_and_port(text, rest if separator else text)
    if port is None:
        if kind == "gcs":
            raise InvalidOptionError(f"--ray-address {text}: no port; give {_FORMS}")
        port = CLIENT_PORT
    return RayAddress(text, kind, host, port)


def _host_and_port(text: str, rest: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit("//" + rest)
        port = parts.port  # ValueError: not a number, or outside 0-65535
    except ValueError:
        raise InvalidOptionError(
            f"--ray-address {text}: the port must be a number from 1 to 65535; give {_FORMS}"
        ) from None
    host = parts.hostname or ""
    if not host or parts.path or parts.query or parts.fragment or parts.username or not set(host) <= _HOST_CHARACTERS:
        raise InvalidOptionError(f"--ray-address {text}: not a host and port; give {_FORMS}")
    if port == 0:
        raise InvalidOptionError(f"--ray-address {text}: port 0 is no port to join; give {_FORMS}")
    return host, port


def check_ray_address(address: str, timeout: float = DEFAULT_TIMEOUT_S) -> RayAddress:
    """Parse `address` and, for HOST:PORT and ray://, check that a gRPC server answers there.

    `auto` is left to Ray, which finds this machine's cluster or fails at once.

    Raises:
        InvalidOptionError: the address has none of the accepted forms.
        ClusterConnectionError: the host does not resolve, nothing listens on the port, or what
            listens is not a Ray head (no gRPC); within about `3 * timeout` seconds.
    """
    parsed = parse_ray_address(address)
    if parsed.kind == "auto":
        return parsed
    what = "the head's GCS port (ray start --head --port, 6379 by default)"
    if parsed.kind == "client":
        what = "the head's Ray Client port (ray start --head --ray-client-server-port, 10001 by default)"
    addresses = _resolve(parsed, timeout)
    try:
        connection = _connect(addresses, time.monotonic() + timeout)
    except OSError as exc:
        raise ClusterConnectionError(
            f"--ray-address {parsed.text}: cannot connect ({_reason(exc)}); check that the cluster is up "
            f"(`ray status` on the head node), and that {parsed.port} is {what}"
        ) from None
    with connection:
        if _tls_on():
            return parsed
        if not _answers_grpc(connection, timeout):
            raise ClusterConnectionError(
                f"--ray-address {parsed.text}: something listens there but it is not a Ray head (no gRPC answer); "
                f"check that {parsed.port} is {what}, not the dashboard's (8265)"
            )
    return parsed


def _resolve(parsed: RayAddress, timeout: float) -> list[tuple]:
    """getaddrinfo in a daemon thread: a resolver that hangs cannot hold the command past `timeout`."""
    result: dict[str, object] = {}

    def lookup() -> None:
        try:
            result["ok"] = socket.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=lookup, name="ray-address-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    if "ok" in result:
        return result["ok"]  # type: ignore[return-value]
    why = _reason(result["error"]) if "error" in result else f"no answer from the resolver in {timeout:g} s"
    raise ClusterConnectionError(
        f"--ray-address {parsed.text}: the host {parsed.host} cannot be resolved ({why}); check the name "
        "(`ray start --head` prints the head's address) and this machine's DNS"
    )


def _connect(addresses: list[tuple], deadline: float) -> socket.socket:
    """A TCP connection to the first of `addresses` that accepts one before `deadline`."""
    error: OSError = ConnectionRefusedError("no address")
    for family, kind, protocol, _, sockaddr in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        connection = socket.socket(family, kind, protocol)
        connection.settimeout(left)
        try:
            connection.connect(sockaddr)
            return connection
        except OSError as exc:
            connection.close()
            error = exc
    raise error


def _answers_grpc(connection: socket.socket, timeout: float) -> bool:
    """Whether the server answers the HTTP/2 preface with a SETTINGS frame (every gRPC server does)."""
    connection.settimeout(timeout)
    try:
        connection.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:  # a frame header: length (3 bytes), type, flags, stream id (4)
            chunk = connection.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    except OSError:
        return False
    return len(header) == 9 and header[3] == _SETTINGS_FRAME


def _tls_on() -> bool:
    return os.environ.get("RAY_USE_TLS", "0").strip().lower() in ("1", "true")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "no answer in time"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
