"""Run a worker in W forked processes that form a gloo process group (for exact-under-DDP metric tests)."""

from __future__ import annotations

import multiprocessing
import socket
from collections.abc import Callable


def run_forked_ranks(worker: Callable[..., None], world: int, *args: object, timeout: float = 120.0) -> list[int]:
    """``worker(rank, world, port, *args)`` in ``world`` forked processes (no re-import: fast); returns their exit
    codes. The worker calls ``dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", …)``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=worker, args=(rank, world, port, *args)) for rank in range(world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=timeout)
        proc.kill()
    return [proc.exitcode for proc in procs]
