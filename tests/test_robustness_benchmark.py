"""benchmarks/robustness.py: its tables are the runs' numbers, with paired intervals over replicates."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from blend_core.stats import paired_difference, t_interval

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("_robustness_bench", ROOT / "benchmarks" / "robustness.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(setting: Path, i: int, metrics: dict) -> None:
    rep = setting / f"r{i}"
    rep.mkdir(parents=True)
    rec = {"metrics": metrics, "wall_s": 60.0 * (i + 1), "convergence": {"baseline": [10 + i, 50]},
           "generator_seed": 1000 + i, "training_seed": i}
    (rep / "record.json").write_text(json.dumps(rec))


def test_neural_table_reports_means_intervals_and_paired_differences(bench, tmp_path):
    setting = tmp_path / "neural" / "toy"
    base, stud, smooth = [0.10, 0.12, 0.11], [0.13, 0.14, 0.15], [0.12, 0.12, 0.13]
    for i in range(3):
        _write(setting, i, {"baseline": {"co-bps": base[i], "vel R2": 0.5}, "student": {"co-bps": stud[i], "vel R2": 0.6},
                            "smoothing": {"co-bps": smooth[i], "vel R2": 0.4}, "teacher": {"co-bps": 0.2, "vel R2": 0.9}})
    text = bench.table(setting, "neural")
    lo, hi = t_interval(base)
    assert f"| baseline | 0.110 [{lo:.3f}, {hi:.3f}]" in text
    d = paired_difference(stud, base)
    assert f"| **student − baseline** | {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" in text
    d = paired_difference(base, smooth)
    assert f"**baseline − smoothing** | {d['mean']:+.3f}" in text
    assert "(0.900 [" in text  # the teacher's decoding of what it is given is marked not comparable
    assert "generator seeds 1000, 1001, 1002" in text and "1.0–3.0 min" in text and "baseline 10/50, 11/50, 12/50" in text


def test_identity_bar_is_the_better_features_row_per_replicate(bench, tmp_path):
    setting = tmp_path / "identity" / "toy"
    svm, logistic, student = [0.7, 0.8, 0.6], [0.75, 0.7, 0.65], [0.8, 0.85, 0.7]
    keys = ("accuracy (EC/IN)", "accuracy (subclass)", "macro F1 (subclass)")
    for i in range(3):
        _write(setting, i, {"features": dict.fromkeys(keys, svm[i]), "features (logistic)": dict.fromkeys(keys, logistic[i]),
                            "student": dict.fromkeys(keys, student[i]), "baseline": dict.fromkeys(keys, 0.5)})
    text = bench.table(setting, "identity")
    best = [max(a, b) for a, b in zip(svm, logistic)]
    d = paired_difference(student, best)
    assert f"| **student − best features** | {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" in text


def test_unknown_setting_exits_2(bench, tmp_path, capsys):
    assert bench.main(["neural", str(tmp_path), "--settings", "nope"]) == 2
    assert "nope" in capsys.readouterr().err and not list(tmp_path.iterdir())
