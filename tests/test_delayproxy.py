"""The benchmark's delay proxy (tests/delayproxy.py) passes bytes through unchanged and counts turns exactly.

No timing is asserted: only what crossed, in which order, and how often the conversation changed direction.
"""

from __future__ import annotations

import socket
import threading

from tests.delayproxy import LOOPBACK, DelayProxy


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server((LOOPBACK, 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_lock_step_exchanges_are_counted_as_turns_and_bytes_arrive_intact():
    listener, thread = _echo_server()
    proxy = DelayProxy(listener.getsockname()[1], 0.002).start()
    try:
        with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as client:
            for word in (b"select", b"one", b"round-trip"):
                client.sendall(word)
                received = b""
                while len(received) < len(word):
                    received += client.recv(65536)
                assert received == word.upper()
            client.shutdown(socket.SHUT_WR)
            assert client.recv(10) == b""  # the server's EOF came through the proxy too
        thread.join(5)
        counts = proxy.reset()
    finally:
        proxy.stop()
        listener.close()
    assert counts.connections == 1
    assert counts.turns == 3
    assert counts.bytes_up == counts.bytes_down == len(b"selectoneround-trip")
    assert proxy.reset().turns == 0  # reset() zeroes
