"""A fault-injecting proxy in front of the real MinIO, for the fault tests.

It listens on 127.0.0.1 and relays HTTP/1.1 to the server, one request at a time per
connection (bodies by Content-Length or chunked), so a rule can act on each request:

    PASS                 relay it
    RESET_REQUEST        reset the connection after the request's head: the server
                         never sees it
    DROP_RESPONSE        relay it, let the server answer (a PUT is stored), then reset
                         the connection instead of passing the answer on, as a load
                         balancer that drops a connection does
    delay(seconds)       wait, then relay
    STALL                never answer (the client's timeout must fire)
    respond(503, "SlowDown")
                         answer with an S3 error document, without relaying (optionally
                         with the server's message and more headers, as a given server
                         words them; a Date header always, as every server sends one)

    with FaultProxy(minio.endpoint) as proxy:
        proxy.rule = every_nth(5, DROP_RESPONSE, method="PUT")
        ... point the writer at proxy.endpoint ...
"""

from __future__ import annotations

import email.utils
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Action:
    kind: str
    seconds: float = 0.0
    status: int = 0
    code: str = ""
    message: str = "injected by the fault proxy"
    headers: tuple[tuple[str, str], ...] = ()


PASS = Action("pass")
RESET_REQUEST = Action("reset_request")
DROP_RESPONSE = Action("drop_response")
STALL = Action("stall")


def delay(seconds: float) -> Action:
    return Action("delay", seconds=seconds)


def respond(status: int, code: str, message: str | None = None,
            headers: dict[str, str] | None = None) -> Action:
    return Action("respond", status=status, code=code,
                  message=message or Action.message, headers=tuple((headers or {}).items()))


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    head: bytes
    body: bytes
    number: int  # 1 for the first request of this method through the proxy

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


Rule = Callable[[Request], "Action | None"]


def every_nth(n: int, action: Action, method: str | None = None) -> Rule:
    """`action` for every n-th request (of `method`, if given)."""

    def rule(req: Request) -> Action | None:
        if method and req.method != method:
            return None
        return action if req.number % n == 0 else None

    return rule


def first(n: int, action: Action, method: str | None = None) -> Rule:
    """`action` for the first n requests (of `method`), then nothing."""
    seen = [0]
    lock = threading.Lock()

    def rule(req: Request) -> Action | None:
        if method and req.method != method:
            return None
        with lock:
            seen[0] += 1
            return action if seen[0] <= n else None

    return rule


def always(action: Action, method: str | None = None) -> Rule:
    return lambda req: action if not method or req.method == method else None


class _Closed(Exception):
    pass


def _read_until(sock: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while True:
        i = buf.find(marker)
        if i >= 0:
            out = bytes(buf[: i + len(marker)])
            del buf[: i + len(marker)]
            return out
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed()
        buf += chunk


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _Closed()
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def _read_body(sock: socket.socket, buf: bytearray, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size_line = _read_until(sock, buf, b"\r\n")
            out += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    line = _read_until(sock, buf, b"\r\n")
                    out += line
                    if line == b"\r\n":
                        return bytes(out)
            out += _read_exact(sock, buf, size + 2)
    return _read_exact(sock, buf, int(headers.get("content-length", "0")))


def _reset(sock: socket.socket) -> None:
    """Closes with a TCP reset, as a dropped connection looks to the client."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass
class FaultProxy:
    upstream: str
    rule: Rule | None = None
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, action)

    def __post_init__(self) -> None:
        u = urlsplit(self.upstream)
        self._up = (u.hostname, u.port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def actions(self, kind: str, method: str | None = None) -> int:
        """How many requests got the action `kind`."""
        with self._lock:
            return sum(1 for m, _, a in self.log if a == kind and (method is None or m == method))

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _decide(self, req: Request) -> Action:
        rule = self.rule
        action = (rule(req) if rule else None) or PASS
        with self._lock:
            self.log.append((req.method, req.path, action.kind))
        return action

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        cbuf, ubuf = bytearray(), bytearray()
        try:
            while not self._stop.is_set():
                head = _read_until(client, cbuf, b"\r\n\r\n")
                line, headers = _parse_head(head)
                method, target = line.split(" ")[:2]
                if headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = b"\r\n".join(
                        h for h in head.split(b"\r\n") if not h.lower().startswith(b"expect:")
                    )
                with self._lock:
                    self._counts[method] = self._counts.get(method, 0) + 1
                    number = self._counts[method]
                req = Request(method, target, headers, head, b"", number)
                action = self._decide(req)
                if action.kind == "reset_request":
                    _reset(client)
                    return
                req.body = _read_body(client, cbuf, headers)
                if action.kind == "stall":
                    self._stop.wait(120)
                    _reset(client)
                    return
                if action.kind == "respond":
                    client.sendall(self._error_response(action, req))
                    continue
                if action.kind == "delay":
                    time.sleep(action.seconds)
                if upstream is None:
                    upstream = socket.create_connection(self._up)
                upstream.sendall(req.head + req.body)
                rhead = _read_until(upstream, ubuf, b"\r\n\r\n")
                status_line, rheaders = _parse_head(rhead)
                status = int(status_line.split(" ")[1])
                body = b"" if method == "HEAD" or status in (204, 304) else _read_body(upstream, ubuf, rheaders)
                if action.kind == "drop_response":
                    _reset(client)
                    return
                client.sendall(rhead + body)
        except (_Closed, OSError, ValueError, IndexError):
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    @staticmethod
    def _error_response(action: Action, req: Request) -> bytes:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{action.code}</Code><Message>{action.message}</Message>"
            f"<Resource>{req.path}</Resource><RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        reason = {503: "Service Unavailable", 500: "Internal Server Error", 429: "Too Many Requests"}
        extra = "".join(f"{k}: {v}\r\n" for k, v in action.headers)
        head = (
            f"HTTP/1.1 {action.status} {reason.get(action.status, 'Error')}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(body) if req.method != 'HEAD' else 0}\r\n"
            f"x-amz-request-id: fault-proxy\r\n{extra}\r\n"
        ).encode()
        return head + (body if req.method != "HEAD" else b"")
