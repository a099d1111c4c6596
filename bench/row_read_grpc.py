"""The profile-get floor: a bare grpc.aio server whose one method reads a customer row by primary
key with asyncpg and returns its bytes. No interceptors, no authentication, no audit, no
decryption, no message building: the necessary work of a read (a gRPC call and one indexed
fetch), done with the fastest primitives, on the same table, data and pool size as the service.

Run as its own process: `python -m bench.row_read_grpc --port N --database-url URL
[--pool-size P]`, stopped by SIGTERM. Method `/bench.RowRead/Get`: request = the customer id as
UTF-8, response = the row's column values as text (NOT_FOUND without one).
"""

from __future__ import annotations

import asyncpg
import grpc

from bench.bare_grpc import database_floor_main

METHOD = "/bench.RowRead/Get"
QUERY = "SELECT * FROM customer WHERE customer_id = $1"


def row_reader(pool: asyncpg.Pool) -> grpc.GenericRpcHandler:
    async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with pool.acquire() as connection:
            row = await connection.fetchrow(QUERY, request.decode())
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such customer")
        return "\x1f".join(str(value) for value in row.values()).encode()

    return grpc.method_handlers_generic_handler("bench.RowRead", {
        "Get": grpc.unary_unary_rpc_method_handler(get)})


def main() -> None:
    database_floor_main("python -m bench.row_read_grpc", __doc__, row_reader)


if __name__ == "__main__":
    main()
