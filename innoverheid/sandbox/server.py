"""A small threaded HTTP server on 127.0.0.1 with scripted faults, shared by the platform fakes.

The fakes speak each platform's wire format (paths, parameters, headers, pagination, auth,
error bodies) so the real client libraries run against them: in tests, in benchmarks and in
`innoverheid demo`. Faults are a list consumed one per data request, so a test (or a
hypothesis strategy) can script "429, then 500, then a cut-off body" exactly.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The faults every fake understands.
FAULTS = ("429", "500", "502", "503", "timeout", "reset", "truncate", "slow", "malformed")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def json(self) -> Any:
        if not self.body:
            return {}
        if "application/json" in self.headers.get("content-type", ""):
            return json.loads(self.body)
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, ensure_ascii=False).encode()


Handler = Callable[[Request], Response]


class LocalServer:
    """Routes plus a fault script. Subclasses register routes in `__init__`.

    `faults` is consumed one entry per request for which `is_data_request` is true (None = no
    fault). `rate_limit_reset` is how far ahead a scripted 429 announces its reset.
    """

    timeout_seconds = 3.0  # how long a scripted "timeout" stalls; clients in tests time out sooner

    def __init__(self, faults: list[str | None] | None = None, rate_limit_reset: float = 1.0):
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self.faults = list(faults or [])
        self.rate_limit_reset = rate_limit_reset
        self.requests: list[Request] = []
        self.faults_applied: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- routing
    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self.prefix_routes.append((method, prefix, handler))

    def is_data_request(self, req: Request) -> bool:
        return True

    def rate_limit_response(self, reset_at: datetime) -> Response:
        """Each platform announces its reset differently; subclasses override."""
        return Response(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                        {"Retry-After": str(max(1, int((reset_at - datetime.now(timezone.utc)).total_seconds())))})

    def error_response(self, status: int) -> Response:
        return Response(status, {"error": "InternalServerError", "message": "Internal Server Error"})

    def malformed(self, response: Response) -> Response:
        """Corrupt one item of a page; subclasses know where the items are."""
        return response

    def next_fault(self, req: Request) -> str | None:
        if not self.is_data_request(req):
            return None
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
            if fault:
                self.faults_applied.append(fault)
            return fault

    def dispatch(self, req: Request) -> Response:
        handler = self.routes.get((req.method, req.path))
        if handler is None:
            for method, prefix, h in self.prefix_routes:
                if method == req.method and req.path.startswith(prefix):
                    handler = h
                    break
        if handler is None:
            return Response(404, {"error": "NotFound", "message": f"no route for {req.method} {req.path}"})
        return handler(req)

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalServer":
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: tests and the demo print their own output
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(req)
                fault = server.next_fault(req)
                if fault == "reset":
                    self._hang_up()
                    return
                if fault == "timeout":
                    time.sleep(server.timeout_seconds)
                    self.close_connection = True
                    return
                if fault == "slow":
                    time.sleep(0.3)
                if fault == "429":
                    resp = server.rate_limit_response(
                        datetime.now(timezone.utc) + timedelta(seconds=server.rate_limit_reset))
                elif fault in ("500", "502", "503"):
                    resp = server.error_response(int(fault))
                else:
                    try:
                        resp = server.dispatch(req)
                    except Exception as exc:  # a bug in a fake must show, not hang the client
                        resp = Response(500, {"error": "FakeServerBug", "message": repr(exc)})
                    if fault == "malformed":
                        resp = server.malformed(resp)
                data = resp.encoded()
                self.send_response(resp.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **resp.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if fault == "truncate":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: max(1, len(data) // 2)])
                    self.wfile.flush()
                    self._hang_up()
                    return
                self.end_headers()
                self.wfile.write(data)

            def _hang_up(self):
                """Drop the connection mid-exchange, as a reset or a cut-off response does."""
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def data_requests(self) -> list[Request]:
        return [r for r in self.requests if self.is_data_request(r)]
