"""Raw HTTP peers on loopback for tests of outbound requests: they answer what a test
scripts, including answers no well-behaved server sends (trickled, endless, silent)."""

from __future__ import annotations

import asyncio
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
