"""Per-epoch tracking: the ``blend_epoch_end`` hook, ``history.csv``, TensorBoard, log lines."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from blend_core.builtin import tracking
from blend_core.config import build_config
from blend_core.errors import BlendError
from blend_core.hookspecs import hookimpl
from blend_core.runner import run, run_seeds

REQUIRED = {"epoch", "train_loss", "val_loss", "lr", "seconds", "train_task"}


class Recorder:
    """A plugin that keeps every record it is sent, as an external tracker would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, dict[str, float]]] = []

    @hookimpl
    def blend_epoch_end(self, run_dir: Path, role: str, record: dict[str, float]) -> None:
        self.calls.append((Path(run_dir), role, dict(record)))


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


@pytest.fixture
def recorded(tiny_raw, builtin_plugins):
    recorder = Recorder()
    builtin_plugins.manager.register(recorder, name="recorder")
    tiny_raw["train"].update(max_epochs=3, patience=10)
    return build_config(tiny_raw, builtin_plugins.registry), builtin_plugins, recorder


def test_a_plugin_receives_every_epoch_of_every_role(recorded, tmp_path):
    config, plugins, recorder = recorded
    out = tmp_path / "run"
    run(config, plugins, out_dir=out)
    by_role: dict[str, list[dict[str, float]]] = {}
    for run_dir, role, record in recorder.calls:
        assert run_dir == out
        by_role.setdefault(role, []).append(record)
    assert list(by_role) == ["teacher", "student", "baseline"]
    for role, records in by_role.items():
        assert [r["epoch"] for r in records] == [0, 1, 2]
        for r in records:
            assert REQUIRED <= set(r), (role, r)
            assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in r.values())
            assert r["lr"] >= 0 and r["seconds"] > 0
        assert records[0]["lr"] > records[-1]["lr"]  # the schedule, as the optimizer saw it
        assert ("train_distill" in records[0]) == (role == "student")
    # the plugin's records are what training kept (the checkpoint's history)
    assert all(c[2]["train_loss"] > 0 for c in recorder.calls)

    header, rows = _rows(out / "history.csv")
    assert header[:6] == ["role", "epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert {"train_task", "train_distill"} <= set(header)
    assert [(r["role"], int(r["epoch"])) for r in rows] == [(c[1], c[2]["epoch"]) for c in recorder.calls]
    for row, (_, _, record) in zip(rows, recorder.calls):
        for key, value in record.items():
            assert float(row[key]) == pytest.approx(value)
        assert (row["train_distill"] != "") == (row["role"] == "student")
    # per-epoch records are in log.txt at INFO
    log = (out / "log.txt").read_text()
    assert "INFO student epoch 2: train_loss=" in log and "train_distill=" in log


def test_resume_does_not_duplicate_history_rows(recorded, tmp_path):
    config, plugins, recorder = recorded
    out = tmp_path / "run"
    run(config, plugins, out_dir=out)
    _, before = _rows(out / "history.csv")
    (out / "checkpoints" / "baseline.pt").unlink()  # interrupted before the baseline finished
    run(config, plugins, out_dir=out, resume=True)
    _, after = _rows(out / "history.csv")
    keys = [(r["role"], r["epoch"]) for r in after]
    assert len(keys) == len(set(keys)) == len(before) == 9
    assert [r for r in after if r["role"] != "baseline"] == [r for r in before if r["role"] != "baseline"]


def test_runs_trained_at_once_report_each_seed(recorded, tmp_path):
    config, plugins, recorder = recorded
    run_seeds(config, plugins, 2, out_dir=tmp_path / "seeds", at_once=True)
    for seed in (0, 1):
        _, rows = _rows(tmp_path / "seeds" / f"seed-{seed}" / "history.csv")
        assert [(r["role"], int(r["epoch"])) for r in rows] == [
            (role, e) for role in ("teacher", "student", "baseline") for e in range(3)
        ]
    assert len(recorder.calls) == 2 * 3 * 3


def test_history_header_grows_and_reported_epochs_replace_later_rows(tmp_path):
    base = {"train_loss": 1.0, "val_loss": 2.0, "lr": 0.1, "seconds": 0.5, "train_task": 1.0}
    for e in range(4):
        tracking.append_history(tmp_path, "teacher", {"epoch": e, **base})
    tracking.append_history(tmp_path, "student", {"epoch": 0, **base, "train_distill": 3.0})
    header, rows = _rows(tmp_path / "history.csv")
    assert header[-1] == "train_distill" and rows[0]["train_distill"] == "" and rows[-1]["train_distill"] == "3.0"
    tracking.append_history(tmp_path, "teacher", {"epoch": 2, **base, "val_loss": 9.0})  # resumed at epoch 2
    _, rows = _rows(tmp_path / "history.csv")
    assert [(r["role"], r["epoch"], r["val_loss"]) for r in rows] == [
        ("teacher", "0", "2.0"), ("teacher", "1", "2.0"), ("student", "0", "2.0"), ("teacher", "2", "9.0"),
    ]


@pytest.mark.skipif(tracking.tensorboard_available(), reason="tensorboard is installed")
def test_tensorboard_asked_but_missing_is_one_clear_line(tiny_raw, builtin_plugins, tmp_path):
    tiny_raw["train"]["tensorboard"] = True
    config = build_config(tiny_raw, builtin_plugins.registry)
    with pytest.raises(BlendError, match="tensorboard") as info:
        run(config, builtin_plugins, out_dir=tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # failed before training


@pytest.mark.skipif(not tracking.tensorboard_available(), reason="tensorboard not installed")
def test_tensorboard_events_are_written(tiny_raw, builtin_plugins, tmp_path):
    tiny_raw["train"]["tensorboard"] = True
    run(build_config(tiny_raw, builtin_plugins.registry), builtin_plugins, out_dir=tmp_path / "run")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    assert {"teacher/val_loss", "student/train_distill", "baseline/lr"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("student/val_loss")) == 2


def test_fit_and_fit_many_report_the_records_they_keep(tiny_raw, builtin_plugins):
    import torch

    from blend_core.build import build_model, build_task, load_data
    from blend_core.multi import fit_many
    from blend_core.training import Objective, fit

    tiny_raw["train"].update(max_epochs=3, patience=10)
    config = build_config(tiny_raw, builtin_plugins.registry)
    registry, cpu = builtin_plugins.registry, torch.device("cpu")
    task = build_task(config, registry, load_data(config, registry)[1], cpu)
    seen: list = []
    result = fit(build_model(config, registry, task, privileged=False), task, config.train, cpu,
                 role="baseline", objective=Objective(task), on_epoch=seen.append)
    assert seen == result.history and [r["epoch"] for r in seen] == [0, 1, 2]

    models = [build_model(config, registry, task, privileged=False) for _ in range(2)]
    pairs: list = []
    many = fit_many(models, task, config.train, cpu, role="baseline", objectives=[Objective(task)] * 2,
                    on_epoch=lambda k, record: pairs.append((k, record)))
    assert [k for k, _ in pairs] == [0, 1] * 3
    assert [r for k, r in pairs if k == 1] == many[1].history
    with pytest.raises(ValueError, match="on_epoch callbacks"):
        fit_many(models, task, config.train, cpu, role="baseline", objectives=[Objective(task)] * 2,
                 on_epoch=[seen.append])
