"""A TCP forwarder between the browser and the Socket.IO listener that a test can cut.

``cut()`` closes every forwarded connection and refuses new ones (accepted, then closed at once)
until ``restore()``: for the browser that is a network failure, while the server keeps running
and processing webhooks, which is what "the board recovers with what was missed" needs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

from zapline.runtime import free_port


@dataclass
class CuttableProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``; threads, one pair per link."""

    target_port: int
    port: int = field(default_factory=free_port)
    _listener: socket.socket | None = None
    _links: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cut: bool = False
    _closed: bool = False

    @property
    def url(self) -> str:
        """What browsers are told the socket URL is."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen and start accepting in a daemon thread."""
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._links.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._links.discard(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self) -> None:
        """Drop every forwarded connection and refuse new ones until ``restore``."""
        self._cut = True
        with self._lock:
            links = list(self._links)
        self._drop(*links)

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut = False

    def close(self) -> None:
        """Stop listening and drop everything."""
        self._closed = True
        self.cut()
        if self._listener is not None:
            self._listener.close()
