"""A TCP proxy in a thread that a test can cut: the database (or Redis) "goes away" mid-request.

    proxy = CuttableProxy("127.0.0.1", 5432)     # listens on 127.0.0.1:proxy.port
    ...                                           # point the connection at proxy.port
    proxy.cut()                                   # every open connection dropped, new ones refused
    proxy.restore()                               # accepting again on the same port

Only loopback addresses are involved; the thread stops with stop().
"""

from __future__ import annotations

import selectors
import socket
import threading


class CuttableProxy:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cuttable-proxy", daemon=True)
        self._thread.start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.setblocking(False)
        return listener

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        registered: set[int] = set()
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
                sockets = [s for pair in self._pairs for s in pair]
            wanted = {id(s): s for s in ([listener] if listener else []) + sockets}
            for key in list(selector.get_map().values()):
                if id(key.fileobj) not in wanted or key.fileobj.fileno() < 0:
                    selector.unregister(key.fileobj)
                    registered.discard(id(key.fileobj))
            for ident, sock in wanted.items():
                if ident not in registered and sock.fileno() >= 0:
                    selector.register(sock, selectors.EVENT_READ)
                    registered.add(ident)
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                if sock is listener:
                    self._accept(listener)
                else:
                    self._forward(sock)
        selector.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._pairs.append((client, server))

    def _forward(self, sock: socket.socket) -> None:
        with self._lock:
            pair = next((p for p in self._pairs if sock in p), None)
        if pair is None:
            return
        other = pair[1] if sock is pair[0] else pair[0]
        try:
            data = sock.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self) -> None:
        """The database is gone: open connections are reset, new ones refused."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, []
        if listener is not None:
            listener.close()
        for pair in pairs:
            for sock in pair:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
                except OSError:
                    pass
                sock.close()

    def restore(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listener = self._listen(self.port)

    def stop(self) -> None:
        self.cut()
        self._stopped.set()
        self._thread.join(timeout=5)
