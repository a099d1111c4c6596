"""The segment benchmarks measure what they say: their rules are valid segment rules, their
hand-written SQL names the same selections, and the synthetic read model is well formed. Quick:
a few hundred rows, no database."""

from __future__ import annotations

import pytest

from bench.harness import REGISTRY
from bench.segment_count import RULES
from bench.segment_data import COLUMNS, customer_count, synthetic_rows
from bench.segment_materialise import RULE
from crm_segment.segments.rules import compile_rule


@pytest.mark.parametrize("rule", [r.cel for r in RULES] + [RULE])
def test_every_bench_rule_compiles_to_sql(rule: str) -> None:
    compiled = compile_rule(rule)
    assert compiled.condition is not None, [i.describe() for i in compiled.analysis.errors]


def test_the_synthetic_read_model_is_seeded_and_selects_something_for_every_rule() -> None:
    rows = list(synthetic_rows(500, seed=3))
    assert rows == list(synthetic_rows(500, seed=3))
    assert all(len(row) == len(COLUMNS) for row in rows) and len({row[0] for row in rows}) == 500
    by_name = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    assert any("TERM_DEPOSIT" in r["product_categories"] and "FUND" not in r["product_categories"]
               and "EMAIL" in r["marketing_channels"] for r in by_name)
    assert any(r["days_since_last_activity"] > 90 and r["aum_change_90d"] < -10_000 and r["tenure_days"] > 365
               for r in by_name)


def test_the_customer_count_defaults_to_a_million_and_can_be_smaller(monkeypatch) -> None:
    monkeypatch.delenv("CRM_BENCH_SEGMENT_CUSTOMERS", raising=False)
    assert customer_count() == 1_000_000
    monkeypatch.setenv("CRM_BENCH_SEGMENT_CUSTOMERS", "20000")
    assert customer_count() == 20_000


def test_the_segment_benchmarks_are_registered() -> None:
    assert REGISTRY["segment-count"].module == "bench.segment_count"
    assert REGISTRY["segment-materialise"].module == "bench.segment_materialise"
