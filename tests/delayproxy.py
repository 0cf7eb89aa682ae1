"""A TCP proxy on 127.0.0.1 that adds a fixed delay each way and counts what crosses it.

Used by ``bench/bench_check.py`` to put a network round trip on the SSH hop (this machine → the VM): every
chunk read from one side is written to the other ``delay_s`` later, order kept, so a request/response pair
costs ``2 × delay_s`` more than on loopback. Everything else stays as the kernel does it on loopback: the proxy
sends with TCP_NODELAY (asyncio's default), and acknowledges at once (TCP_QUICKACK), so it adds no delayed-ACK
stall of its own. It cannot delay ACKs themselves: a sender that waits for an ACK (Nagle) waits for the proxy's
local one, not for one round trip — so the figures behind it are, if anything, kind to every contender alike.

Counts (per proxy, reset with ``reset()``): connections, chunks and bytes each way, and **turns**: how often
the client sent something after the server had sent something since the client's last send. Over a lock-step
protocol a turn is one round trip; where a client overlaps exchanges (two SSH channels at once) turns
over-count the round trips the client actually waited for, so elapsed time is the measure that matters.

Only loopback: it listens on 127.0.0.1 and connects to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


@dataclass
class Counts:
    connections: int = 0
    chunks_up: int = 0  # client -> server
    chunks_down: int = 0  # server -> client
    bytes_up: int = 0
    bytes_down: int = 0
    turns: int = 0


class DelayProxy:
    """``DelayProxy(target_port, delay_s).start()`` → listens on ``self.port``; ``stop()`` closes everything."""

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.port = 0
        self.counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> DelayProxy:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def reset(self) -> Counts:
        """The counts so far, and zero them."""
        with self._lock:
            counts, self.counts = self.counts, Counts()
        return counts

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        server_w: asyncio.StreamWriter | None = None
        try:
            server_r, server_w = await asyncio.open_connection(LOOPBACK, self.target_port)
            with self._lock:
                self.counts.connections += 1
            state = {"last": "down"}  # a first client send after connect counts as a turn
            await asyncio.gather(
                self._pipe(client_r, server_w, True, state, client_w.get_extra_info("socket")),
                self._pipe(server_r, client_w, False, state, server_w.get_extra_info("socket")),
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (client_w, server_w):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            if task is not None:
                self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool, state: dict[str, str], sock: object
    ) -> None:
        """Copy reader → writer ``delay_s`` later; ``sock`` is the reader's socket (acknowledged at once)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if sock is not None and _QUICKACK is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[attr-defined]
                with self._lock:
                    if data and up:
                        self.counts.chunks_up += 1
                        self.counts.bytes_up += len(data)
                        if state["last"] == "down":
                            self.counts.turns += 1
                        state["last"] = "up"
                    elif data:
                        self.counts.chunks_down += 1
                        self.counts.bytes_down += len(data)
                        state["last"] = "down"
                queue.put_nowait((time.monotonic() + self.delay_s, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
