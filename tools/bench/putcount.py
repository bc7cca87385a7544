"""A tiny HTTP proxy in front of MinIO that counts PUT requests, per key prefix.

The streaming benchmark sends s3sink's requests through it so that the number of PUTs is
observed independently of the sink's own statistics. SigV4 signs the Host header the
client sent; the proxy forwards that header unchanged, so the signature stays valid.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# hop-by-hop headers are the proxy's own business, not the upstream's
_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"})


class PutCounter:
    """Counts PUTs by request path (``/bucket/key``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: Counter[str] = Counter()

    def add(self, path: str) -> None:
        with self._lock:
            self._paths[path] += 1

    def count(self, path_prefix: str) -> int:
        with self._lock:
            return sum(n for p, n in self._paths.items() if p.startswith(path_prefix))


class CountingProxy:
    """Listens on a free 127.0.0.1 port and forwards every request to ``upstream``."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.counter = PutCounter()
        upstream_host, upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        counter = self.counter

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and Expect: 100-continue

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet: the benchmark prints its own table

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                headers.pop("Expect", None)  # the body is read already
                upstream_conn = http.client.HTTPConnection(upstream_host, upstream_port, timeout=120)
                try:
                    upstream_conn.request(self.command, self.path, body=body, headers=headers)
                    response = upstream_conn.getresponse()
                    payload = response.read()
                    if self.command == "PUT":  # every attempt: a retried PUT must show up
                        counter.add(urllib.parse.urlsplit(self.path).path)
                    self.send_response(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in _HOP_HEADERS and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream_conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "CountingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
