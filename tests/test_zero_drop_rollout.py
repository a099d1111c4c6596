"""A rolling update drops no call, proven locally with real processes: two replicas of the profile
service serve a steady, bounded load through the kit's client channel (round_robin over every
address, retries on UNAVAILABLE, as over a headless Service); a third replica starts (the surge
pod), then one of the first two gets SIGTERM, as the kubelet sends it, and drains. Every call made
meanwhile must succeed.

The replacement's address is in the channel's list from the start (refused until it listens), as
DNS would add the new pod; the terminated replica's stays (refused once it exits), as the
endpoint removal lags SIGTERM in a cluster. The gateway's own drain (readiness 503 first, then
uvicorn's graceful stop) is proven in test_zero_drop_gateway_rollout.py.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest

from crm.profile.v1 import attribute_pb2, profile_service_pb2_grpc
from crmkit.auth import Role
from crmkit.channels import open_channel
from crmkit.testing import TEST_JWT_SECRET, DatabaseFactory, free_port, token

WORKERS = 8  # concurrent callers
PAUSE = 0.005  # seconds between one caller's calls: a steady, bounded load


def replica_env(database_url: str, port: int, keys: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1",
            "CRM_PROFILE_DATABASE_URL": database_url, "CRM_PROFILE_PORT": str(port),
            "CRM_SHUTDOWN_GRACE_SECONDS": "5", "OTEL_SDK_DISABLED": "true", **keys}


@pytest.mark.slow
async def test_replacing_a_replica_under_load_drops_no_call(database_factory: DatabaseFactory, tmp_path: Path,
                                                            rollout: Any) -> None:
    url = await database_factory.create("rollout")
    keys = {"CRM_PROFILE_ENCRYPTION_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
            "CRM_PROFILE_ACTIVE_KEY_ID": "k1", "CRM_PROFILE_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode()}
    old, kept, surge = free_port(), free_port(), free_port()
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "crm_profile", "migrate"],
                            env=replica_env(url, old, keys), check=True, capture_output=True, timeout=300)
    channel = open_channel(f"ipv4:127.0.0.1:{old},127.0.0.1:{kept},127.0.0.1:{surge}", deadline_seconds=5,
                           token_source=lambda: token(Role.ANALYST))
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            try:
                await stub.ListAttributeDefinitions(attribute_pb2.ListAttributeDefinitionsRequest())
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                outcomes[exc.code().name] += 1
            await asyncio.sleep(PAUSE)

    def replica(port: int, name: str) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
        return rollout.replica("crm_profile", ["serve"], replica_env(url, port, keys), tmp_path / f"{name}.log",
                               lambda: rollout.grpc_serving(port))

    async with replica(old, "old") as terminated, replica(kept, "kept"):
        callers = [asyncio.create_task(caller()) for _ in range(WORKERS)]
        try:
            await asyncio.sleep(2)
            before = outcomes["OK"]
            async with replica(surge, "surge"):
                started = time.monotonic()
                terminated.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(terminated.wait(), timeout=45)
                drained = time.monotonic() - started
                await asyncio.sleep(2)  # and the load goes on on the two replicas left
                stop.set()
                await asyncio.gather(*callers)
        finally:
            stop.set()
            for task in callers:
                task.cancel()
            await channel.close()
    failed = {code_: n for code_, n in outcomes.items() if code_ != "OK"}
    print(f"\nrollout: {outcomes['OK']} calls ok, {sum(failed.values())} failed {failed}; "
          f"the terminated replica drained and exited in {drained:.1f} s (measured under load)")
    assert code == 0, "the replica exits cleanly on SIGTERM"
    assert before > 0 and outcomes["OK"] > before, "calls went on through the replacement"
    assert failed == {}, f"calls failed during the rollout: {failed}"
