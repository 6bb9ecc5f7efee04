"""Honest selection: every run scores the validation split, and nothing chosen depends on the scored split.

The proof is a shuffle: the same data with the scored (test) trials' held-out spikes permuted
across trials. Test scores change; every checkpoint, every validation score and the sweep's
``best.yaml`` must not. The shuffled data comes from a tiny data-source plugin (``conftest.shuffle_plugin``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from blend_core.cli import main

def shuffled_raw(tiny: dict, shuffle: bool) -> dict:
    raw = copy.deepcopy(tiny)
    raw["plugins"] = ["shuffled"]
    raw["data"] = {**raw["data"], "type": "shuffled_synthetic", "shuffle": shuffle}
    raw["train"].update(max_epochs=3, threads=1)
    return raw


def _checkpoints(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.name: torch.load(p, weights_only=True)["model"] for p in sorted(run_dir.glob("checkpoints/*.pt"))}


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[f].keys() == b[f].keys() and all(torch.equal(a[f][k], b[f][k]) for k in a[f]) for f in a)


def _run(raw: dict, out: Path) -> dict:
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------------ a plain run


def test_a_run_scores_every_row_on_the_validation_split_too(tiny_raw, tmp_path, capsys):
    metrics = _run(tiny_raw, tmp_path / "run")
    val = metrics["val"]
    assert set(val) == set(metrics) - {"val"} == {"teacher", "student", "baseline", "smoothing", "oracle"}
    for row in val:
        assert set(val[row]) == set(metrics[row]) and val[row] != metrics[row]  # same metrics, other trials
    assert "val" not in capsys.readouterr().out.split()  # the printed table shows the scored split only


def test_shuffling_the_scored_spikes_leaves_every_checkpoint_and_validation_score(
        shuffle_plugin, tiny_raw, tmp_path):
    raw = shuffled_raw(tiny_raw, shuffle=False)
    raw["train"]["monitor"] = "score"  # early stopping reads the validation co-bps: it must not see the test trials
    runs = {s: _run(shuffled_raw(tiny_raw, s) | {"train": raw["train"]}, tmp_path / f"shuffle-{s}")
            for s in (False, True)}
    assert runs[False]["student"]["co-bps"] != runs[True]["student"]["co-bps"]  # the shuffle reached the scores
    assert runs[False]["val"] == runs[True]["val"]
    assert _same_weights(_checkpoints(tmp_path / "shuffle-False"), _checkpoints(tmp_path / "shuffle-True"))
    history = (tmp_path / "shuffle-False" / "history.csv").read_text().splitlines()
    assert "val_score" in history[0].split(",")  # what the monitor watched, per epoch


def test_monitor_score_keeps_the_epoch_of_the_best_validation_score(tiny_raw, tmp_path):
    raw = copy.deepcopy(tiny_raw)
    raw["train"].update(max_epochs=4, monitor="score")
    _run(raw, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "student.pt", weights_only=True)
    scores = [r["val_score"] for r in state["history"]]
    assert state["best_epoch"] == max(range(len(scores)), key=scores.__getitem__)
    assert state["best_val"] == pytest.approx(-max(scores))


def test_monitor_score_needs_a_task_that_scores_its_validation_split(builtin_plugins):
    from blend_core.config import TrainConfig
    from blend_core.errors import BlendError
    from blend_core.selection import monitor_score

    assert monitor_score(object(), TrainConfig()) is None  # the loss: any task
    with pytest.raises(BlendError, match="train.monitor: 'score' needs a task with a validation score"):
        monitor_score(object(), TrainConfig(monitor="score"))


# ------------------------------------------------------------------ a sweep


def test_best_yaml_is_chosen_on_the_validation_column(tiny_raw, builtin_plugins, tmp_path):
    """The test column favours one trial, the validation column the other: the validation column wins."""
    from blend_core.sweep import parse_sweep, plan, write_best

    raw = copy.deepcopy(tiny_raw)
    raw["sweep"] = {"params": {"distillation.alpha": [0.3, 0.7]}, "metric": "student/co-bps"}
    sweep = parse_sweep(raw, builtin_plugins.registry)
    trials = plan(sweep, builtin_plugins.registry)
    rows = [{"trial": t["id"], "status": "finished", **t["params"], "student/co-bps": test, "val/student/co-bps": val}
            for t, test, val in zip(trials, (0.9, 0.1), (0.1, 0.2))]
    saved = yaml.safe_load(write_best(sweep, rows, tmp_path).read_text())
    assert saved["distillation"]["alpha"] == 0.7
    for row in rows:
        del row["val/student/co-bps"]  # a run without validation scores cannot be selected honestly
    from blend_core.errors import BlendError

    with pytest.raises(BlendError, match="no validation column 'val/student/co-bps'"):
        write_best(sweep, rows, tmp_path)


def test_a_sweep_on_shuffled_scored_spikes_picks_the_same_best_and_trains_the_same(
        shuffle_plugin, tiny_raw, tmp_path):
    """Two sweeps on one Ray instance (its start-up is the slow part), one on shuffled test spikes."""
    ray = pytest.importorskip("ray")
    from blend_core.plugins import load_plugins
    from blend_core.sweep import run_sweep

    plugins = load_plugins(["shuffled"], autoload=False)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             configure_logging=False)
    try:
        results = {}
        for shuffle in (False, True):
            raw = shuffled_raw(tiny_raw, shuffle)
            raw["sweep"] = {"params": {"distillation.alpha": [0.2, 0.8]}, "metric": "student/co-bps",
                            "resources": {"cpu": 1}}
            results[shuffle] = run_sweep(raw, plugins, source="sweep.yaml", out_dir=tmp_path / f"sweep-{shuffle}",
                                         plugin_names=["shuffled"])
    finally:
        ray.shutdown()
    a, b = (tmp_path / "sweep-False", tmp_path / "sweep-True")
    assert [r["student/co-bps"] for r in results[False].rows] != [r["student/co-bps"] for r in results[True].rows]
    assert [r["val/student/co-bps"] for r in results[False].rows] == [r["val/student/co-bps"] for r in results[True].rows]
    best = [yaml.safe_load(p.read_text()) for p in (a / "best.yaml", b / "best.yaml")]
    for config in best:
        del config["output"], config["data"]["shuffle"]
    assert best[0] == best[1]
    for trial in sorted(p.name for p in (a / "trials").iterdir()):
        assert _same_weights(_checkpoints(a / "trials" / trial), _checkpoints(b / "trials" / trial)), trial


def test_monitor_score_with_seeds_trained_at_once(tiny_raw, tmp_path):
    """``fit_many`` scores each model on its own and keeps each one's best-scoring epoch."""
    raw = copy.deepcopy(tiny_raw)
    raw["train"].update(max_epochs=3, monitor="score")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--seeds", "2", "--at-once", "--out", str(tmp_path / "run")]) == 0
    for seed in (0, 1):
        state = torch.load(tmp_path / "run" / f"seed-{seed}" / "checkpoints" / "baseline.pt", weights_only=True)
        scores = [r["val_score"] for r in state["history"]]
        assert state["best_epoch"] == max(range(len(scores)), key=scores.__getitem__)
