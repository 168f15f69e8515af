"""Test only: DNS answers that change between lookups (DNS rebinding), in a server process.

Put this directory on PYTHONPATH and set VIDGATE_TEST_DNS to a JSON object
``{name: [answer, answer, ...]}``, each answer a list of addresses: the Nth lookup of a
name (from 0) gets ``answers[min(N, len - 1)]``; other names go to the real resolver.
Both ways a server looks names up are covered: ``socket.getaddrinfo`` (and the default
asyncio loop, which calls it in a thread) and uvloop's ``Loop.getaddrinfo`` (libuv's
own, which the patch on ``socket`` would not reach).
With VIDGATE_TEST_DNS_LOG set, each lookup appends ``name N`` to that file. Without
VIDGATE_TEST_DNS nothing is changed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any

_SPEC = os.environ.get("VIDGATE_TEST_DNS")

if _SPEC:
    _answers: dict[str, list[list[str]]] = json.loads(_SPEC)
    _log_path = os.environ.get("VIDGATE_TEST_DNS_LOG")
    _lookups: dict[str, int] = {}
    _lock = threading.Lock()
    _real_getaddrinfo = socket.getaddrinfo

    def _port(port: Any) -> int:
        if port is None:
            return 0
        if isinstance(port, bytes):
            port = port.decode()
        return int(port) if str(port).isdigit() else socket.getservbyname(str(port), "tcp")

    def _answer(key: str, port: Any, family: int, type: int, proto: int) -> list[Any]:
        with _lock:
            count = _lookups.get(key, 0)
            _lookups[key] = count + 1
            if _log_path:
                with open(_log_path, "a") as log:
                    log.write(f"{key} {count}\n")
        answers = _answers[key]
        results = []
        for address in answers[min(count, len(answers) - 1)]:
            six = ":" in address
            fam = socket.AF_INET6 if six else socket.AF_INET
            if family not in (0, fam):
                continue
            sockaddr = (address, _port(port), 0, 0) if six else (address, _port(port))
            results.append((fam, type or socket.SOCK_STREAM, proto or 6, "", sockaddr))
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return results

    def _key(host: Any) -> str | None:
        name = host.decode() if isinstance(host, bytes) else host
        key = name.rstrip(".").lower() if isinstance(name, str) else None
        return key if key in _answers else None

    def _getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        key = _key(host)
        if key is None:
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        return _answer(key, port, family, type, proto)

    socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]

    try:
        import uvloop
    except ImportError:
        pass
    else:
        _real_loop_getaddrinfo = uvloop.Loop.getaddrinfo

        async def _loop_getaddrinfo(
            self: Any,
            host: Any,
            port: Any,
            *,
            family: int = 0,
            type: int = 0,
            proto: int = 0,
            flags: int = 0,
        ) -> list[Any]:
            key = _key(host)
            if key is None:
                return await _real_loop_getaddrinfo(
                    self, host, port, family=family, type=type, proto=proto, flags=flags
                )
            return _answer(key, port, family, type, proto)

        uvloop.Loop.getaddrinfo = _loop_getaddrinfo  # type: ignore[method-assign]
