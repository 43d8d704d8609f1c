"""`python -m gateway`: the gateway under uvicorn with uvloop and httptools and `JIAOZHI_GATEWAY_WORKERS` processes.

One gateway process is CPU-bound on one core (every forwarded request is parsed twice and sent twice); on
a multi-core host several worker processes share the listening socket. Each worker keeps its own token
cache, rate-limit buckets (documented: limits are per process) and upstream connection pool.
"""
from __future__ import annotations

import os

import uvicorn

from gateway.observe import multiprocess_metrics_dir
from shared.settings import DEFAULT_PORTS, HTTP_DRAIN_S, KEEP_ALIVE_S


def main() -> None:
    """Serve the gateway on JIAOZHI_HOST:JIAOZHI_PORT."""
    workers = int(os.environ.get("JIAOZHI_GATEWAY_WORKERS", "1"))
    multiprocess_metrics_dir(workers)  # before the workers start: they inherit it
    uvicorn.run("gateway.app:create_app", factory=True, host=os.environ.get("JIAOZHI_HOST", "127.0.0.1"),
                port=int(os.environ.get("JIAOZHI_PORT") or DEFAULT_PORTS["gateway"]), workers=workers,
                loop="uvloop", http="httptools", log_config=None, access_log=False,
                timeout_graceful_shutdown=HTTP_DRAIN_S,  # then the lifespan: the whole stop stays under 10 s
                timeout_keep_alive=KEEP_ALIVE_S)


if __name__ == "__main__":
    main()
