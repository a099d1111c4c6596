"""The profile service as the benchmarks run it: its settings as a deployment sets them, and a
book of synthetic customers loaded through the real CreateCustomer RPC."""

from __future__ import annotations

import base64
import os
import random
import uuid

from bench.customers import synthetic_customers
from bench.harness import BenchRun, drive
from crm.profile.v1 import profile_service_pb2 as pb
from crm.profile.v1 import profile_service_pb2_grpc

CUSTOMERS = 3_000
LOAD_CONCURRENCY = 16
CALL_TIMEOUT_SECONDS = 10.0
RELATIONSHIP_MANAGER = "rm-bench"


def service_env(database_url: str, port: int, jwt_secret: str) -> dict[str, str]:
    """The profile service's settings, as a deployment would set them (fresh keys per run)."""
    return {
        **os.environ,
        "CRM_ENV": "development",
        "CRM_HOST": "127.0.0.1",
        "CRM_JWT_SECRET": jwt_secret,
        "CRM_SHUTDOWN_GRACE_SECONDS": "2",
        "CRM_PROFILE_DATABASE_URL": database_url,
        "CRM_PROFILE_PORT": str(port),
        "CRM_PROFILE_ENCRYPTION_KEYS": f"bench1:{base64.b64encode(os.urandom(32)).decode()}",
        "CRM_PROFILE_ACTIVE_KEY_ID": "bench1",
        "CRM_PROFILE_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    }


async def load_customers(bench: BenchRun, stub: profile_service_pb2_grpc.ProfileServiceStub,
                         metadata: tuple[tuple[str, str], ...],
                         figure: str | None = f"create_qps_c{LOAD_CONCURRENCY}") -> list[str]:
    """Create the customers through the real RPC (validation, encryption, audit, outbox); their
    throughput is emitted as `figure` (None: a bench measuring creates against a floor itself)."""
    customers = list(synthetic_customers(CUSTOMERS, seed=11, relationship_manager_id=RELATIONSHIP_MANAGER))
    rng = random.Random(13)
    creates = [pb.CreateCustomerRequest(customer=c, request_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
               for c in customers]

    async def create(index: int) -> object:
        return await stub.CreateCustomer(creates[index], metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)

    bench.note(f"creating {CUSTOMERS:,} customers through CreateCustomer")
    result = await drive(create, concurrency=LOAD_CONCURRENCY, requests=len(creates))
    bench.note(f"CreateCustomer {result.summary()}")
    if figure is not None:
        bench.emit(figure, result.throughput, "requests/s")
    return [c.customer_id for c in customers]
