"""Raw HTTP peers on loopback for tests of outbound requests: they answer what a test
scripts, including answers no well-behaved server sends (trickled, endless, silent)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A raw TCP peer on 127.0.0.1 that counts connections and runs ``handler`` on each."""

    def __init__(self, handler: Handler, ssl_context: Any = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Peer:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                await self.handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def answer(status: str, body: bytes, *headers: str) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return handler


def trickle(interval_s: float = 0.2, count: int = 200) -> Handler:
    """Headers, then one body byte every ``interval_s``: no single read ever times out."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {count}\r\n\r\n".encode())
        for _ in range(count):
            if writer.is_closing():
                return
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(interval_s)

    return handler


def trickle_headers(interval_s: float = 2.0) -> Handler:
    """A status line, then one header byte every ``interval_s``, until the client goes:
    the headers never end, and no single read ever times out."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
        while True:
            await writer.drain()
            try:
                # Waiting on the socket, not a plain sleep: a client that gives up is
                # seen at once (``ThreadedPeer.open`` counts what clients hold).
                if not await asyncio.wait_for(reader.read(65536), interval_s):
                    return
            except TimeoutError:
                writer.write(b"x")

    return handler


class ThreadedPeer:
    """A ``Peer`` on an event loop of its own thread, for tests that block (an e2e test
    waiting on a server process). Counts the connections accepted, those still open,
    and the most open at once."""

    def __init__(self, handler: Handler) -> None:
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        running: set[asyncio.Task[Any]] = set()

        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            self.accepted += 1
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            try:
                await handler(reader, writer)
            finally:
                self.open -= 1
                running.discard(task)

        self._running = running

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._peer = Peer(counted)
        asyncio.run_coroutine_threadsafe(self._peer.__aenter__(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{self._peer.port}"

    def close(self) -> None:
        async def stop() -> None:
            self._peer.server.close()
            # Handlers still running (a trickle) are stopped first: from Python 3.12,
            # wait_closed() waits for every connection to end.
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            await self._peer.__aexit__()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ThreadedPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
