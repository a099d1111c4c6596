"""The benchmark harness: the registry, figures, the closed-loop load driver, one bench run.

A benchmark is a module with `async def run(bench: BenchRun) -> None`. It measures its path
and the path's floor in the same run, on the same machine, and reports each figure through
`bench.emit(...)`: one JSON object per line on stdout, and all of them in
`bench/results/<name>.json` when the bench ends. Progress notes go to stderr, so stdout stays
machine-readable.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.environment import Postgres, ServerProcess, fresh_database

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark; its module is imported only when the benchmark is selected."""

    name: str
    module: str
    goal: str


# Names and goals are fixed by DESIGN.md ("Conventions the checks rely on"). A new benchmark
# adds a line here and a module with `run(bench)`.
REGISTRY: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark("profile-get", "bench.profile_get",
              "GetCustomer qps at concurrency 16 >= 0.8 x a bare grpc.aio server reading the same row by primary key "
              "(p99 <= 15 ms)"),
    Benchmark("profile-events", "bench.profile_events",
              "events/s through the IngestEvents stream, 1M events, none lost >= 20,000/s"),
    Benchmark("profile-import", "bench.profile_import",
              "rows/s importing 1M customers >= 0.6 x raw COPY of every stored row into indexed tables "
              "+ the seal loop"),
    Benchmark("outbox-write", "bench.outbox_write",
              "transactions/s of a write with its outbox row at concurrency 16 >= 0.5 x the same write without"),
    Benchmark("segment-count", "bench.segment_count",
              "PreviewSegment count over 1M customers, three typical rules: <= 1.5 x the hand-written SQL "
              "count of the same rule, and <= 0.3 s"),
    Benchmark("segment-materialise", "bench.segment_materialise",
              "seconds to materialise a 1M-member segment with its membership history <= 2 s"),
    Benchmark("campaign-dispatch", "bench.campaign_dispatch",
              "messages/s through the dispatcher and file adapter, as a ratio to writing the same lines bare"),
    Benchmark("campaign-audience", "bench.campaign_audience",
              "seconds to build the audience of a 1M-member segment through the whole funnel and arbitration "
              "against two other running campaigns <= 10 s (floor: the funnel's set-based SQL)"),
    Benchmark("campaign-nba", "bench.campaign_nba",
              "GetNextBestAction p99 ms at concurrency 4 <= 30 (qps at 16 over a bare gRPC call, information)"),
    Benchmark("campaign-trigger", "bench.campaign_trigger",
              "p95 ms from a holding maturing in profile (UpdateHolding) to the triggered dispatch recorded on "
              "campaign's feed, real processes <= 2000 (floor: the write and its arrival on profile's feed)"),
    Benchmark("risk-score", "bench.risk_score",
              "seconds to score 1M customers in batch with write-back and change events <= 30 s (floor: the "
              "model's predict_proba + raw COPY of the scores and events); ScoreCustomer p99 at concurrency 4 "
              "<= 30 ms"),
    Benchmark("risk-suitability", "bench.risk_suitability",
              "CheckSuitability qps at concurrency 16 >= 0.6 x a bare gRPC call at concurrency 16"),
    Benchmark("feedback-classify", "bench.feedback_classify",
              "ClassifyText qps at concurrency 16 over a bare gRPC call at concurrency 16 (BANKING77 model)"),
    Benchmark("feedback-intake", "bench.feedback_intake",
              "FileComplaint complaints/s at concurrency 16 over hand-written SQL writing the same rows at 16 "
              "(and over a bare gRPC call)"),
    Benchmark("gateway-overload", "bench.gateway_overload",
              "p99 ms of the admitted requests at twice the sustainable rate (the rest answered 429 with "
              "Retry-After) <= 50"),
    Benchmark("segment-live", "bench.segment_live",
              "p95 seconds from a profile change to the membership change on segment's feed, 50 real-time "
              "segments, real processes <= 1 s; per-event evaluation p99 <= 5 ms"),
    Benchmark("segment-clv", "bench.segment_clv",
              "seconds to summarise CDNOW_master (23,570 customers) and fit BG/NBD + Gamma-Gamma (no floor)"),
    Benchmark("gateway-360", "bench.gateway_360",
              "customer 360 requests/s through the gateway, every service on this machine, >= 0.7 x the bare "
              "fan-out (same HTTP stack, same number of empty gRPC calls) with p99 <= 50 ms"),
]}


@dataclass(frozen=True)
class Figure:
    """One measured figure. `ratio` is value / floor: above 1 is better for a throughput,
    below 1 is better for a latency or a duration."""

    bench: str
    metric: str
    value: float
    unit: str
    floor: float | None = None
    headline: bool = False

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor == 0:
            return None
        return self.value / self.floor

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bench": self.bench, "metric": self.metric, "value": _round(self.value),
                               "unit": self.unit}
        if self.floor is not None:
            out["floor"] = _round(self.floor)
            ratio = self.ratio
            if ratio is not None:
                out["ratio"] = round(ratio, 3)
        if self.headline:
            out["headline"] = True
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(", ", ": "))


def _round(value: float) -> float:
    """Four significant digits, whole numbers from 1000 up: more would be noise."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, 3 - math.floor(math.log10(abs(value)))))


# --- the closed-loop load driver ------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values: the smallest value with at least p %
    of the values at or below it (so p99 of 1..100 is 99, and never an interpolated value)."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class LoadResult:
    """What one load phase achieved: completed calls, wall time, and every call's latency."""

    concurrency: int
    completed: int
    elapsed_seconds: float
    latencies_seconds: Sequence[float]  # sorted ascending

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def percentile_ms(self, p: float) -> float:
        return percentile(self.latencies_seconds, p) * 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p90_ms(self) -> float:
        return self.percentile_ms(90)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def summary(self) -> str:
        return (f"c={self.concurrency} n={self.completed} {self.throughput:,.0f}/s "
                f"p50={self.p50_ms:.2f}ms p90={self.p90_ms:.2f}ms p99={self.p99_ms:.2f}ms")


Call = Callable[[int], Awaitable[object]]
Clock = Callable[[], float]


async def drive(
    call: Call, *, concurrency: int, requests: int | None = None, seconds: float | None = None,
    clock: Clock = time.perf_counter,
) -> LoadResult:
    """Closed loop: `concurrency` tasks each await `call(i)` and issue the next as soon as it
    returns, until `requests` calls were issued or `seconds` have passed. `i` numbers the calls
    0, 1, 2, ... across tasks. The first failing call stops the phase and is raised: a figure
    measured over failing calls would be meaningless."""
    if (requests is None) == (seconds is None):
        raise ValueError("give exactly one of requests or seconds")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    issued = 0
    latencies: list[float] = []
    started = clock()
    deadline = started + seconds if seconds is not None else math.inf

    async def worker() -> None:
        nonlocal issued
        while (requests is None or issued < requests) and clock() < deadline:
            index = issued
            issued += 1
            sent = clock()
            await call(index)
            latencies.append(clock() - sent)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    elapsed = clock() - started
    latencies.sort()
    return LoadResult(concurrency=concurrency, completed=len(latencies), elapsed_seconds=elapsed,
                      latencies_seconds=latencies)


def merge(results: Sequence[LoadResult]) -> LoadResult:
    """Several phases of the same load as one: their calls, wall times and latencies added up."""
    if not results or len({r.concurrency for r in results}) != 1:
        raise ValueError("merge needs phases at one concurrency")
    return LoadResult(concurrency=results[0].concurrency, completed=sum(r.completed for r in results),
                      elapsed_seconds=sum(r.elapsed_seconds for r in results),
                      latencies_seconds=sorted(x for r in results for x in r.latencies_seconds))


async def drive_alternating(
    calls: Sequence[Call], *, concurrency: int, seconds: float, rounds: int, warmup_seconds: float = 0.0,
    clock: Clock = time.perf_counter,
) -> list[LoadResult]:
    """Drive each of `calls` for `seconds` in all, in `rounds` alternating slices (a b a b ...),
    after a warm-up of each. On a machine whose background load drifts, a path and its floor
    then see the same conditions, and their ratio stays meaningful."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if warmup_seconds > 0:
        for call in calls:
            await drive(call, concurrency=concurrency, seconds=warmup_seconds, clock=clock)
    slices: list[list[LoadResult]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, results in zip(calls, slices, strict=True):
            results.append(await drive(call, concurrency=concurrency, seconds=seconds / rounds, clock=clock))
    return [merge(results) for results in slices]


OutcomeCall = Callable[[int], Awaitable[str]]


@dataclass(frozen=True)
class OpenLoopResult:
    """What an open-loop phase saw: the rate offered, and each outcome's calls with their latencies
    (measured from the moment each call was due, so a client falling behind shows as latency)."""

    offered_per_second: float
    elapsed_seconds: float
    outcomes: dict[str, LoadResult]
    # How late each call went out (sorted): large when the client itself cannot keep up with the
    # rate, which a loaded machine shows; the outcomes' latencies include it.
    issue_lag_seconds: Sequence[float] = ()

    @property
    def issue_lag_p99_ms(self) -> float:
        return percentile(self.issue_lag_seconds, 99) * 1000 if self.issue_lag_seconds else 0.0

    def count(self, outcome: str) -> int:
        result = self.outcomes.get(outcome)
        return result.completed if result else 0

    @property
    def total(self) -> int:
        return sum(r.completed for r in self.outcomes.values())

    def share(self, outcome: str) -> float:
        return self.count(outcome) / self.total if self.total else 0.0

    def summary(self) -> str:
        parts = ", ".join(f"{name}: {r.completed:,} ({r.throughput:,.0f}/s, p99={r.p99_ms:.1f}ms)"
                          for name, r in sorted(self.outcomes.items()))
        return (f"offered {self.offered_per_second:,.0f}/s for {self.elapsed_seconds:.1f}s "
                f"(issued late by p99={self.issue_lag_p99_ms:.1f}ms) -> {parts}")


async def drive_open(
    call: OutcomeCall, *, rate: float, seconds: float, clock: Clock = time.perf_counter,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> OpenLoopResult:
    """Open loop: call `i` is due at `i / rate` seconds and issued then whether or not earlier
    calls have returned, for `seconds`; each call answers its outcome (e.g. "200", "429"). This is
    how overload arrives (clients do not wait for each other), where the closed loop of `drive`
    would slow down with the server and hide the overload. Latency counts from the due time, so a
    call the client could not issue on time is not flattered (no coordinated omission). A call
    that raises fails the phase."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    due_count = math.floor(rate * seconds)
    latencies: dict[str, list[float]] = {}
    lags: list[float] = []
    started = clock()

    async def one(index: int, due: float) -> None:
        lags.append(clock() - due)
        outcome = await call(index)
        latencies.setdefault(outcome, []).append(clock() - due)

    try:
        async with asyncio.TaskGroup() as group:
            for index in range(due_count):
                due = started + index / rate
                wait = due - clock()
                if wait > 0:
                    await sleep(wait)
                group.create_task(one(index, due))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    elapsed = clock() - started
    return OpenLoopResult(offered_per_second=rate, elapsed_seconds=elapsed, outcomes={
        name: LoadResult(concurrency=0, completed=len(values), elapsed_seconds=elapsed,
                         latencies_seconds=sorted(values))
        for name, values in latencies.items()}, issue_lag_seconds=sorted(lags))


# --- one bench run ----------------------------------------------------------------------------


class Output(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


@dataclass
class BenchRun:
    """What a benchmark gets: its name, the PostgreSQL server, the phase length, and `emit`."""

    name: str
    postgres: Postgres
    seconds: float
    results_dir: Path = RESULTS_DIR
    out: Output = field(default_factory=lambda: sys.stdout)
    figures: list[Figure] = field(default_factory=list)

    def emit(self, metric: str, value: float, unit: str, *, floor: float | None = None,
             headline: bool = False) -> Figure:
        figure = Figure(self.name, metric, value, unit, floor=floor, headline=headline)
        self.figures.append(figure)
        self.out.write(figure.to_json() + "\n")
        self.out.flush()
        return figure

    def note(self, message: str) -> None:
        sys.stderr.write(f"[{self.name}] {message}\n")
        sys.stderr.flush()

    @asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh, empty database for this run, dropped at the end."""
        async with fresh_database(self.postgres.admin_url, prefix=self.name) as url:
            yield url

    def log_path(self, process: str) -> Path:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        return self.results_dir / f"{self.name}.{process}.log"

    @asynccontextmanager
    async def server(self, process: str, argv: Sequence[str], *, env: dict[str, str],
                     port: int, start_seconds: float | None = None) -> AsyncIterator[str]:
        """A server process, serving (health SERVING) at the yielded address until SIGTERM at exit.
        `start_seconds` overrides how long it may take to start (default SERVER_START_SECONDS)."""
        server = ServerProcess(process, argv, env=env, port=port, log_path=self.log_path(process))
        await (server.start() if start_seconds is None else server.start(timeout=start_seconds))
        try:
            yield server.address
        finally:
            await server.stop()

    def write_results(self) -> Path:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.results_dir / f"{self.name}.json"
        path.write_text(json.dumps([f.as_dict() for f in self.figures], indent=2) + "\n")
        return path


async def run_benchmarks(names: Sequence[str], *, seconds: float, out: Output = sys.stdout) -> int:
    """Run the named benchmarks one after the other; the number that failed."""
    failed = 0
    async with Postgres.provide() as postgres:
        for name in names:
            benchmark = REGISTRY[name]
            run = BenchRun(name=name, postgres=postgres, seconds=seconds, out=out)
            started = time.perf_counter()
            try:
                module = importlib.import_module(benchmark.module)
                await module.run(run)
            except Exception as exc:
                failed += 1
                # No results file for a failed run: a partial one would read as a finished one.
                (run.results_dir / f"{name}.json").unlink(missing_ok=True)
                run.note(f"FAILED after {time.perf_counter() - started:.1f}s: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=sys.stderr)
                continue
            run.note(f"wrote {run.write_results()} in {time.perf_counter() - started:.1f}s")
    return failed
