"""The before/after table of the post-training evaluation (pure parts; the lm-eval run is in the GRPO CLI test)."""

from __future__ import annotations

import pytest

from training.evaluate import format_table, metric_rows

BEFORE = {"results": {"executable_cf_if_else": {"alias": "if_else", "exact_match,none": 0.139,
                                                "exact_match_stderr,none": "N/A", "f1,none": 0.30,
                                                "sample_len": 200}}}
AFTER = {"results": {"executable_cf_if_else": {"alias": "if_else", "exact_match,none": 0.678,
                                               "exact_match_stderr,none": "N/A", "f1,none": 0.75, "sample_len": 200},
                     "executable_cf_while": {"exact_match,none": 0.081}}}


def test_metric_rows_pair_before_and_after():
    rows = metric_rows(BEFORE, AFTER)
    assert [(r["task"], r["metric"]) for r in rows] == [
        ("executable_cf_if_else", "exact_match"), ("executable_cf_if_else", "f1"), ("executable_cf_while", "exact_match")]
    assert rows[0]["delta"] == pytest.approx(0.539)
    assert rows[2]["before"] is None and rows[2]["delta"] is None


def test_table_is_markdown_in_percent():
    table = format_table(metric_rows(BEFORE, AFTER))
    lines = table.splitlines()
    assert lines[0] == "| task | metric | before | after | delta |"
    assert "| executable_cf_if_else | exact_match | 13.9 | 67.8 | +53.9 |" in lines
    assert "| executable_cf_while | exact_match |  | 8.1 |  |" in lines


def test_without_baseline_there_is_no_before_column_value():
    rows = metric_rows(None, AFTER)
    assert all(r["before"] is None for r in rows) and len(rows) == 3
