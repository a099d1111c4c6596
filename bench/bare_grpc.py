"""The gRPC floor: a bare grpc.aio server serving only the standard health Check.

No interceptors, no authentication, no database: what a unary call costs through the same
gRPC stack (and the same server options) as a service, and nothing else. Run as its own
process, `python -m bench.bare_grpc --port N`, stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from crmkit.server import SERVER_OPTIONS


async def serve(port: int, *handlers: grpc.GenericRpcHandler) -> None:
    """Serve health (and `handlers`, for floors that do more than nothing) until SIGTERM."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if handlers:
        server.add_generic_rpc_handlers(handlers)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await servicer.enter_graceful_shutdown()
    await server.stop(1.0)


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to undo: a floor's handler ends every transaction it opens, so release costs no
    round trip."""


async def _serve_with_pool(port: int, database_url: str, pool_size: int,
                           handler: Callable[[asyncpg.Pool], grpc.GenericRpcHandler]) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size, reset=_no_reset)
    try:
        await serve(port, handler(pool))
    finally:
        await pool.close()


def database_floor_main(prog: str, description: str | None,
                        handler: Callable[[asyncpg.Pool], grpc.GenericRpcHandler]) -> None:
    """The command line of a floor that works on a database (`--port`, `--database-url`,
    `--pool-size`): `handler(pool)` served beside health until SIGTERM, on an asyncpg pool of that
    size without a reset round trip on release."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    arguments = parser.parse_args()
    asyncio.run(_serve_with_pool(arguments.port, arguments.database_url, arguments.pool_size, handler))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_grpc", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
