"""Upstreams for in-process gateway tests: a working one (uvicorn in a thread) and a frozen one (a socket that
accepts connections into its backlog and never answers, as a SIGSTOPped service does)."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn

from deploy.natsd import free_port


@contextlib.contextmanager
def serving_upstream(app: Callable, port: int | None = None) -> Iterator[str]:
    """`app` served by uvicorn in a background thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "upstream did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def frozen_upstream(port: int | None = None) -> Iterator[str]:
    """A listening socket nobody serves: connections are accepted by the kernel, requests never answered."""
    port = port or free_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        sock.close()


async def ok_app(scope: dict, receive, send) -> None:  # noqa: ANN001 - ASGI
    """Answers every request 200 with a small JSON body naming the path."""
    if scope["type"] != "http":
        return
    if scope["path"] != "/healthz":
        while (await receive()).get("more_body"):
            pass
    body = b'{"path": "%s"}' % scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def slow_app(seconds: float, calls: list[str]) -> Callable:
    """Answers 201 after `seconds`, recording each call's body (to count effects)."""
    import asyncio

    async def app(scope: dict, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/healthz":
            await ok_app(scope, receive, send)
            return
        calls.append(body.decode())
        await asyncio.sleep(seconds)
        answer = b'{"call": %d}' % len(calls)
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})

    return app
