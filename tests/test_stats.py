"""Statistics over seeds: t-intervals checked against hand-computed values, and the tables' marks."""

from __future__ import annotations

import math

import pytest

from blend_core import runner, stats

# Student's t quantiles t(0.975, df), from a printed table
T975 = {1: 12.706205, 2: 4.302653, 4: 2.776445}


def test_describe_uses_the_sample_sd():
    d = stats.describe([1.0, 2.0, 4.0])
    assert d["mean"] == pytest.approx(7 / 3)
    assert d["sd"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert d["n"] == 3 and d["values"] == [1.0, 2.0, 4.0]
    assert stats.describe([5.0])["sd"] == 0.0


def test_paired_difference_three_seeds_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) * 1 / sqrt(3)
    d = stats.paired_difference([3.0, 5.0, 7.0], [2.0, 3.0, 4.0])
    half = T975[2] / math.sqrt(3)  # 2.48414
    assert d["values"] == [1.0, 2.0, 3.0] and d["mean"] == 2.0 and d["sd"] == pytest.approx(1.0)
    assert d["ci_low"] == pytest.approx(2 - half, abs=1e-5) and d["ci_high"] == pytest.approx(2 + half, abs=1e-5)
    assert d["ci_low"] == pytest.approx(-0.48414, abs=1e-5)


def test_paired_difference_two_and_five_seeds_by_hand():
    d = stats.paired_difference([1.0, 3.0], [0.0, 0.0])  # mean 2, sd sqrt(2): half = t(1) * sqrt(2) / sqrt(2)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((2 - T975[1], 2 + T975[1]), abs=1e-5)
    diffs = [0.1, -0.2, 0.3, 0.0, 0.3]  # mean 0.1; squared deviations 0, .09, .04, .01, .04: sd sqrt(0.18 / 4)
    d = stats.paired_difference(diffs, [0.0] * 5)
    half = T975[4] * math.sqrt(0.18 / 4) / math.sqrt(5)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((0.1 - half, 0.1 + half), abs=1e-5)


def test_one_seed_has_no_interval_and_unpaired_lengths_are_refused():
    d = stats.paired_difference([1.0], [0.5])
    assert d["mean"] == 0.5 and math.isnan(d["ci_low"]) and math.isnan(d["ci_high"])
    with pytest.raises(ValueError, match="one pair per seed"):
        stats.paired_difference([1.0, 2.0], [1.0])


def _seed(student: float, control: float | None = None) -> dict:
    m = {
        "teacher": {"co-bps": 0.12, "vel R2": 0.97, "note": "text is skipped"},
        "student": {"co-bps": student, "vel R2": 0.8},
        "baseline": {"co-bps": 0.02, "vel R2": 0.35},
        "oracle": {"co-bps": 0.14},
    }
    if control is not None:
        m["control_teacher"] = {"co-bps": 0.1, "vel R2": 0.4}
        m["control_student"] = {"co-bps": control, "vel R2": 0.5}
    return m


def test_summarize_roles_and_paired_differences():
    summary = stats.summarize([_seed(0.07), _seed(0.08), _seed(0.09)])
    assert list(summary) == ["teacher", "student", "baseline", "oracle", "student - baseline"]
    assert "note" not in summary["teacher"]
    gap = summary["student - baseline"]["co-bps"]
    half = T975[2] * 0.01 / math.sqrt(3)
    assert gap["mean"] == pytest.approx(0.06) and gap["ci_low"] == pytest.approx(0.06 - half, abs=1e-6)
    assert gap["values"] == pytest.approx([0.05, 0.06, 0.07])
    assert runner.summarize is stats.summarize  # the runner's --seeds summary is this one


def test_summarize_with_the_control_reports_its_gaps():
    summary = stats.summarize([_seed(0.07, 0.06), _seed(0.08, 0.06), _seed(0.09, 0.09)])
    assert [k for k in summary if stats.is_difference(k)] == [
        "student - baseline", "student - control_student", "control_student - baseline",
    ]
    assert summary["student - control_student"]["co-bps"]["values"] == pytest.approx([0.01, 0.02, 0.0])
    assert summary["student - control_student"]["vel R2"]["mean"] == pytest.approx(0.3)


def test_tables_mark_the_teachers_behavior_decoding():
    table = stats.format_table(_seed(0.08, 0.06))
    lines = table.splitlines()
    teacher = next(line for line in lines if line.startswith("teacher"))
    assert teacher.rstrip().endswith("0.9700*")
    assert not any(line.rstrip().endswith("*") for line in lines if not line.startswith("teacher"))
    assert lines[-1].startswith("* not comparable") and "vel R2" in lines[-1]
    no_teacher = stats.format_table({"student": {"vel R2": 0.8}, "baseline": {"vel R2": 0.3}})
    assert "*" not in no_teacher

    text = stats.format_summary(stats.summarize([_seed(0.07, 0.06), _seed(0.08, 0.06), _seed(0.09, 0.09)]))
    assert "0.9700 ± 0.0000*" in text and "* not comparable" in text
    gap_line = next(line for line in text.splitlines() if line.startswith("student - baseline"))
    assert "+0.0600 [" in gap_line
    assert "95% t-interval over 3 seeds" in text
