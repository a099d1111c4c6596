"""segment-clv: seconds to summarise the CDNOW master file and fit BG/NBD and Gamma-Gamma.

CDNOW_master.txt (69,659 transactions of 23,570 customers; Fader, Hardie & Lee 2005) is read
from `<repo>/../shared/data`, or from `CRM_BENCH_DATA_DIR` when set, and parsed before the clock
starts. Timed, in this process and with nothing else of the bench running: the calibration
summary (1 January - 30 September 1997, weeks), the BG/NBD fit over every customer and the
Gamma-Gamma fit over the repeat customers, the same pure functions the service hands to a spawn
worker. Each is timed `REPEATS` times and the median reported; headline: the median total.
No floor: there is no simpler way to the same parameters to compare with. The fitted parameters
go to stderr, to be checked against the 1/10th sample's published ones.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date
from pathlib import Path

from bench.harness import BenchRun
from crm_segment.clv import rules
from crm_segment.clv.model import TimeUnit, Transaction

REPEATS = 3
CALIBRATION_START, CALIBRATION_END = date(1997, 1, 1), date(1997, 9, 30)


def data_dir() -> Path:
    configured = os.environ.get("CRM_BENCH_DATA_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_master(path: Path) -> list[Transaction]:
    transactions = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or not fields[0].isdigit():  # the header line
            continue
        customer_id, day, _, dollars = fields
        transactions.append(Transaction(customer_id, date(int(day[:4]), int(day[4:6]), int(day[6:])),
                                        float(dollars)))
    return transactions


async def run(bench: BenchRun) -> None:
    path = data_dir() / "CDNOW_master.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is absent: set CRM_BENCH_DATA_DIR to the folder holding CDNOW_master.txt")
    transactions = load_master(path)
    bench.note(f"{len(transactions):,} transactions read from {path}")
    timings: dict[str, list[float]] = {"summarise": [], "fit_bgnbd": [], "fit_gamma_gamma": [], "total": []}
    for _ in range(REPEATS):
        started = time.perf_counter()
        summaries = rules.summarise(transactions, calibration_start=CALIBRATION_START,
                                    calibration_end=CALIBRATION_END, unit=TimeUnit.WEEKS)
        summarised = time.perf_counter()
        bgnbd = rules.fit_bgnbd(summaries)
        fitted = time.perf_counter()
        gamma_gamma = rules.fit_gamma_gamma(summaries)
        done = time.perf_counter()
        for name, seconds in (("summarise", summarised - started), ("fit_bgnbd", fitted - summarised),
                              ("fit_gamma_gamma", done - fitted), ("total", done - started)):
            timings[name].append(seconds)
    bench.note(f"{len(summaries):,} customers; BG/NBD r={bgnbd.r:.4f} alpha={bgnbd.alpha:.4f} a={bgnbd.a:.4f} "
               f"b={bgnbd.b:.4f} LL={bgnbd.log_likelihood:,.1f}; Gamma-Gamma over {gamma_gamma.customers:,}: "
               f"p={gamma_gamma.p:.4f} q={gamma_gamma.q:.4f} gamma={gamma_gamma.gamma:.4f}")
    bench.emit("customers", len(summaries), "customers")
    for name in ("summarise", "fit_bgnbd", "fit_gamma_gamma"):
        bench.emit(f"{name}_seconds", statistics.median(timings[name]), "s")
    bench.emit("summarise_and_fit_seconds", statistics.median(timings["total"]), "s", headline=True)
