"""The harness's contracts: the JSON figure format and the load driver's counting and percentiles.

Behaviour only: a fake clock drives the load driver, so nothing here depends on how fast the
machine is.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.__main__ import parse_args
from bench.environment import Postgres, with_database
from bench.harness import REGISTRY, BenchRun, Figure, drive, drive_alternating, drive_open, merge, percentile


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_a_throughput_figure_is_one_json_line_with_floor_and_ratio() -> None:
    figure = Figure("profile-get", "get_qps_c16", 1500.0, "requests/s", floor=2000.0, headline=True)
    line = figure.to_json()
    assert "\n" not in line
    assert json.loads(line) == {"bench": "profile-get", "metric": "get_qps_c16", "value": 1500.0,
                                "unit": "requests/s", "floor": 2000.0, "ratio": 0.75, "headline": True}


def test_a_figure_without_floor_has_neither_floor_nor_ratio_nor_headline() -> None:
    assert json.loads(Figure("b", "m", 3.25, "s").to_json()) == {"bench": "b", "metric": "m", "value": 3.25,
                                                                 "unit": "s"}


def test_values_keep_four_significant_digits() -> None:
    figure = json.loads(Figure("b", "m", 1234.56789, "x", floor=0.0123456).to_json())
    assert figure["value"] == 1235
    assert figure["floor"] == 0.01235
    assert figure["ratio"] == round(1234.56789 / 0.0123456, 3)


def test_emit_prints_each_figure_as_it_comes_and_the_results_file_holds_them_all(tmp_path) -> None:
    out = Lines()
    run = BenchRun(name="demo", postgres=Postgres("postgresql://x/y", "test"), seconds=1.0,
                   results_dir=tmp_path, out=out)
    run.emit("a_qps", 10.0, "requests/s", floor=20.0, headline=True)
    run.emit("a_p99_ms", 2.0, "ms")
    lines = [json.loads(line) for line in out.text.splitlines()]
    assert [line["metric"] for line in lines] == ["a_qps", "a_p99_ms"]
    assert lines[0]["headline"] is True and lines[0]["ratio"] == 0.5
    assert json.loads(run.write_results().read_text()) == lines
    assert (tmp_path / "demo.json").exists()


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)


async def test_driver_counts_requests_and_measures_each_latency() -> None:
    clock = FakeClock()

    async def call(index: int) -> None:
        await asyncio.sleep(0)
        clock.now += (index + 1) / 1000  # the i-th call "takes" i+1 ms

    result = await drive(call, concurrency=1, requests=100, clock=clock)
    assert result.completed == 100
    assert result.elapsed_seconds == pytest.approx(5.05)  # 1 + 2 + ... + 100 ms
    assert result.throughput == pytest.approx(100 / 5.05)
    assert result.p50_ms == pytest.approx(50)
    assert result.p90_ms == pytest.approx(90)
    assert result.p99_ms == pytest.approx(99)
    assert list(result.latencies_seconds) == sorted(result.latencies_seconds)


async def test_driver_stops_issuing_when_the_time_is_up() -> None:
    clock = FakeClock()

    async def call(_: int) -> None:
        clock.now += 1.0

    result = await drive(call, concurrency=1, seconds=10, clock=clock)
    assert result.completed == 10
    assert result.p99_ms == pytest.approx(1000)


async def test_driver_keeps_exactly_concurrency_calls_in_flight() -> None:
    in_flight = 0
    most = 0
    seen: list[int] = []

    async def call(index: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        seen.append(index)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1

    result = await drive(call, concurrency=4, requests=50)
    assert result.completed == 50
    assert most == 4
    assert sorted(seen) == list(range(50))


async def test_driver_raises_the_first_failure() -> None:
    async def call(index: int) -> None:
        await asyncio.sleep(0)
        if index == 5:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await drive(call, concurrency=3, requests=20)


async def test_driver_needs_exactly_one_bound() -> None:
    async def call(_: int) -> None:
        pass

    with pytest.raises(ValueError):
        await drive(call, concurrency=1)
    with pytest.raises(ValueError):
        await drive(call, concurrency=1, requests=1, seconds=1)


async def test_alternating_phases_take_turns_and_add_up() -> None:
    clock = FakeClock()
    order: list[str] = []

    def timed(label: str, step: float):  # type: ignore[no-untyped-def]
        async def call(_: int) -> None:
            order.append(label)
            clock.now += step

        return call

    floor, path = await drive_alternating([timed("floor", 0.5), timed("path", 1.0)], concurrency=1, seconds=6,
                                          rounds=3, warmup_seconds=1, clock=clock)
    # warm-up: 2 floor calls, 1 path call; then 3 rounds of 2 s each: 4 floor calls, 2 path calls.
    assert order == ["floor"] * 2 + ["path"] + (["floor"] * 4 + ["path"] * 2) * 3
    assert (floor.completed, path.completed) == (12, 6)
    assert floor.elapsed_seconds == pytest.approx(6) and path.elapsed_seconds == pytest.approx(6)
    assert floor.throughput == pytest.approx(2 * path.throughput)
    assert path.p99_ms == pytest.approx(1000)


class FakeSleep:
    """Advances the fake clock instead of waiting, and lets other tasks run as a real sleep does."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.clock.now += seconds
        await asyncio.sleep(0)


async def test_open_loop_issues_each_call_when_due_without_waiting_for_earlier_ones() -> None:
    clock = FakeClock()
    in_flight = 0
    most = 0
    release = asyncio.Event()

    async def call(index: int) -> str:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 20:
            release.set()
        await release.wait()  # none returns before the last is issued: the loop does not wait
        in_flight -= 1
        return "429" if index % 4 == 0 else "200"

    result = await drive_open(call, rate=10, seconds=2, clock=clock, sleep=FakeSleep(clock))
    assert most == 20
    assert clock.now == pytest.approx(100 + 1.9)  # the last call was due at 1.9 s
    assert (result.total, result.count("200"), result.count("429")) == (20, 15, 5)
    assert result.share("429") == pytest.approx(0.25)
    assert result.outcomes["200"].throughput == pytest.approx(15 / 1.9)


async def test_open_loop_latency_counts_from_the_due_time() -> None:
    clock = FakeClock()

    async def call(index: int) -> str:
        if index == 0:
            clock.now += 0.5  # the client stalls half a second: the calls due meanwhile go out late
        await asyncio.sleep(0)
        return "200"

    result = await drive_open(call, rate=100, seconds=0.1, clock=clock, sleep=FakeSleep(clock))
    admitted = result.outcomes["200"]
    assert admitted.completed == 10
    # the last call was due at 0.09 s and issued after the stall: its wait counts
    assert admitted.latencies_seconds[0] >= 0.41
    assert admitted.p99_ms >= 500
    assert result.issue_lag_p99_ms >= 410  # and the lateness is reported as the client's own
    assert result.issue_lag_seconds[0] == pytest.approx(0.01)  # the first, once the driver yielded


async def test_open_loop_raises_a_failing_call_and_rejects_a_zero_rate() -> None:
    async def call(index: int) -> str:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await drive_open(call, rate=1000, seconds=0.01)
    with pytest.raises(ValueError, match="rate"):
        await drive_open(call, rate=0, seconds=1)


async def test_merge_needs_one_concurrency() -> None:
    clock = FakeClock()

    async def call(_: int) -> None:
        clock.now += 1

    one = await drive(call, concurrency=1, requests=2, clock=clock)
    assert merge([one, one]).completed == 4
    with pytest.raises(ValueError):
        merge([])


def test_command_line_runs_all_or_the_named_benchmarks() -> None:
    assert "profile-get" in REGISTRY
    assert parse_args([]).names == list(REGISTRY)
    assert parse_args(["profile-get"]).names == ["profile-get"]
    with pytest.raises(SystemExit):
        parse_args(["no-such-bench"])


def test_a_fresh_database_url_keeps_the_server_and_its_options() -> None:
    assert with_database("postgresql://u@h:5432/postgres", "x") == "postgresql://u@h:5432/x"
    assert (with_database("postgresql://postgres:@/postgres?host=/tmp/pg", "x")
            == "postgresql://postgres:@/x?host=/tmp/pg")
