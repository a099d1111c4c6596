"""The gRPC floor: a bare grpc.aio server serving only the standard health Check.

No interceptors, no authentication, no database: what a unary call costs through the same
gRPC stack (and the same server options) as a service, and nothing else. Run as its own
process, `python -m bench.bare_grpc --port N`, stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_grpc", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
