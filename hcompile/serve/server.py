"""Running the app under uvicorn: one process, one event loop, executor runs in threads.

Shutdown (SIGINT / SIGTERM) is uvicorn's graceful one: stop accepting connections, let every
in-flight request finish (up to ``graceful_timeout_s``), then run the app's lifespan
shutdown, which drains the batchers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import uvicorn


def make_server(app: Any, host: str, port: int, *, graceful_timeout_s: int = 30,
                log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=graceful_timeout_s, access_log=False)
    return uvicorn.Server(config)


def bound_port(server: uvicorn.Server) -> int:
    """The port the started server listens on (useful with port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


def serve(server: uvicorn.Server, on_started: Callable[[int], None] | None = None) -> None:
    """Run ``server`` until it is told to stop; call ``on_started(port)`` once it listens."""

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started and on_started is not None:
            on_started(bound_port(server))
        await task

    asyncio.run(main())


class BackgroundServer:
    """A server on a background thread (tests, benchmarks): ``with BackgroundServer(app) as s``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(app, host, port)
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self.host = host
        self.port = 0

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            self._thread.join(0.02)
        self.port = bound_port(self.server)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)
