"""Socket level: a threading HTTP/1.1 server that can drop off the network and come back.

The server counts accepted TCP connections and remembers open ones, so ``go_down``
can both close the listening socket (new connections are refused) and cut keep-alive
connections a client would otherwise keep using.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Response

log = logging.getLogger(__name__)

# (method, request target, headers, raw body) -> response, or None to close silently.
Handle = Callable[[str, str, Any, bytes], Response | None]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handle: Handle, on_connect: Callable[[], None]) -> None:
        self.handle = handle
        self._on_connect = on_connect
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self._on_connect()
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-exchange is routine here (timeouts, go_down).
        log.debug("connection from %s ended: %r", client_address, sys.exc_info()[1])

    def drop_connections(self) -> None:
        """Cut every open connection, as a crashed server would."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus the
        # client's delayed ACK adds ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line and status are logged; headers (the token) never are.
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        response = self.server.handle(method, self.path, self.headers, raw)
        if response is None:
            self.close_connection = True
            return
        body = json.dumps(response.body).encode() + b"\n"
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
