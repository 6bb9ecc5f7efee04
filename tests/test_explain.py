"""Warnings that explain numbers: below a reference row, ended inside warm-up, still improving."""

from __future__ import annotations

import json

import yaml

from blend_core.cli import main
from blend_core.explain import below_references, run_warnings, training_cut_short

METRICS = {
    "baseline": {"co-bps": 0.02, "vel R2": 0.34},
    "teacher": {"co-bps": 0.12, "vel R2": 0.97},
    "student": {"co-bps": 0.09, "vel R2": 0.80},
    "smoothing": {"co-bps": 0.035, "vel R2": 0.76},
    "oracle": {"co-bps": 0.14, "vel R2": 0.99},
}


def test_a_model_below_smoothing_is_named_but_not_one_below_the_oracle():
    line = below_references(METRICS)
    assert line.startswith("below smoothing on the scored split: baseline (co-bps, vel R2);")
    assert "student" not in line and "teacher" not in line  # below the oracle only: expected


def test_the_validation_split_is_judged_when_the_run_scored_it():
    val = {"baseline": {"co-bps": 0.05}, "smoothing": {"co-bps": 0.03}}
    assert below_references({**METRICS, "val": val}) is None  # the scored split would warn
    val["baseline"]["co-bps"] = 0.01
    assert below_references({**METRICS, "val": val}).startswith("below smoothing on the validation split: baseline")


def test_the_teachers_behavior_decoding_is_not_judged():
    assert below_references({"teacher": {"vel R2": 0.1}, "smoothing": {"vel R2": 0.7}}) is None


def _history(lrs, losses):
    return [{"epoch": i, "lr": lr, "val_loss": v} for i, (lr, v) in enumerate(zip(lrs, losses))]


def test_ended_inside_warmup():
    train = {"lr": 1e-3, "warmup_steps": 100, "max_epochs": 3}
    lines = training_cut_short(train, {"teacher": _history([1e-4, 2e-4, 3e-4], [3, 2, 1])})
    assert lines == ["teacher ended inside the lr warm-up (lr 0.0003 of 0.001 at the last epoch): "
                     "under-trained; raise train.max_epochs or lower train.warmup_steps"]


def test_still_improving_at_max_epochs_and_a_converged_run_is_quiet():
    train = {"lr": 1e-3, "warmup_steps": 1, "max_epochs": 20}
    decaying = [1e-3 * (1 - i / 20) for i in range(20)]
    lines = training_cut_short(train, {"student": _history(decaying, [20 - i for i in range(20)])})
    assert len(lines) == 1 and lines[0].startswith("student (best epoch 20 of 20): ran out of epochs")
    converged = [5 - i for i in range(5)] + [1] * 15  # best at epoch 5, flat since
    assert training_cut_short(train, {"student": _history(decaying, converged)}) == []
    early_stopped = _history(decaying[:8], [8 - i for i in range(8)])  # stopped before max_epochs
    assert training_cut_short(train, {"student": early_stopped}) == []


def test_a_seeds_run_is_judged_on_its_mean(tmp_path):
    for seed, co_bps in ((0, 0.01), (1, 0.05)):  # mean 0.03 < smoothing's 0.035
        d = tmp_path / f"seed-{seed}"
        d.mkdir()
        rows = {"baseline": {"co-bps": co_bps}, "smoothing": {"co-bps": 0.035}}
        (d / "metrics.json").write_text(json.dumps(rows))
        (d / "config.yaml").write_text(yaml.safe_dump({"train": {"lr": 1e-3, "max_epochs": 2, "warmup_steps": 50}}))
        (d / "history.csv").write_text("role,epoch,lr,val_loss\nbaseline,0,1e-5,2\nbaseline,1,2e-5,1\n")
    lines = run_warnings(tmp_path)
    assert lines[0].startswith("seed-0 (and 1 more of 2 seeds): baseline ended inside the lr warm-up")
    assert lines[1].startswith("mean over 2 seeds: below smoothing on the scored split: baseline (co-bps)")


def test_the_cli_prints_the_warning_under_the_table(tmp_path, tiny_config_file, capsys):
    code = main(["run", str(tiny_config_file), "--out", str(tmp_path / "r"), "--set", "train.warmup_steps=1000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "warning: teacher, student, baseline ended inside the lr warm-up" in out
    assert out.index("warning:") < out.index("run directory:")
