"""`blend compare`: one table of every row across runs (mean ± sd for --seeds runs), config differences."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from blend_core.cli import main


def _run(path, metrics, config):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    (path / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def runs(tmp_path):
    config = {"train": {"lr": 1e-3, "seed": 0, "threads": 1}, "output": {"dir": "x"}}
    _run(tmp_path / "a", {"student": {"co-bps": 0.1, "vel R2": 0.5}, "teacher": {"vel R2": 0.9},
                          "smoothing": {"co-bps": 0.05}, "val": {"student": {"co-bps": 9.0}}}, config)
    for seed, value in ((0, 0.2), (1, 0.4)):
        c = {"train": {"lr": 3e-3, "seed": seed, "threads": 2}, "output": {"dir": "y"}}
        _run(tmp_path / "b" / f"seed-{seed}", {"student": {"co-bps": value}, "smoothing": {"co-bps": 0.05}}, c)
    return tmp_path / "a", tmp_path / "b"


def test_text_table_rows_seeds_and_differences(runs, capsys):
    assert main(["compare", *map(str, runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "row", "seeds", "co-bps", "vel", "R2"]
    assert lines[1].split() == ["a", "student", "1", "0.1000", "0.5000"]
    assert lines[2].split() == ["a", "teacher", "1", "-", "0.9000*"]  # not comparable: marked
    assert lines[4].split() == ["b", "student", "2", "0.3000", "±", "0.1414", "-"]  # mean ± sd over 2 seeds
    assert not any(line.startswith("a ") and " val " in line for line in lines)  # val scores are not a row
    start = lines.index("config differences:")
    assert lines[start + 1].split() == ["run", "train.lr", "train.seed"]  # output and threads are cosmetic
    assert lines[start + 2].split() == ["a", "0.001", "0"] and lines[start + 3].split() == ["b", "0.003", "0..1"]


def test_csv_and_markdown(runs, capsys):
    assert main(["compare", *map(str, runs), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    b = next(r for r in rows if r["run"] == "b" and r["row"] == "student")
    assert float(b["co-bps"]) == pytest.approx(0.3) and float(b["co-bps sd"]) == pytest.approx(0.1414, abs=1e-4)
    assert b["train.lr"] == "0.003"
    assert main(["compare", *map(str, runs), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| run | row | seeds | co-bps | vel R2 |\n|---|---|---|---|---|\n| a | student | 1 |")


def test_compare_warns_and_refuses_what_is_not_a_run(runs, tmp_path, capsys):
    assert main(["compare", str(runs[0])]) == 0
    assert "warning: a: below" not in capsys.readouterr().out  # a's student is above smoothing
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    assert "not a finished run or --seeds run" in capsys.readouterr().err
