"""Divergence is a result, not a success: a role whose validation loss is not finite stops the run with
one line naming the role and the epoch, exit 3, no "best" checkpoint; the run directory is kept, and
continuing with another learning rate needs a new --out."""

from __future__ import annotations

import math
import re

import pytest

FAST = ["--set", "train.max_epochs=3", "--set", "train.patience=100"]


def _diverged(role: str, epoch: int, lr: str) -> re.Pattern:
    return re.compile(rf"error: {re.escape(role)}: validation loss is (nan|inf|-inf) at epoch {epoch}: training "
                      rf"diverged; lower train.lr \(now {re.escape(lr)}\) and start again with a new --out\n")


def test_a_run_that_never_trains_fails_and_keeps_no_best_checkpoint(tmp_path, tiny_config_file, cli):
    run = tmp_path / "run"
    code, out, err = cli("run", tiny_config_file, "--out", run, *FAST, "--set", "train.lr=1e30")
    assert code == 3 and _diverged("teacher", 0, "1e+30").fullmatch(err), err
    assert out == "" and not (run / "metrics.json").exists()
    assert not (run / "checkpoints" / "teacher.pt").exists()  # before: the untrained weights, best_epoch -1
    assert "teacher,0," in (run / "history.csv").read_text()  # the directory is kept: it shows the divergence
    code, _, err = cli("run", tiny_config_file, "--out", run, "--resume", *FAST, "--set", "train.lr=1e-3")
    assert code == 2 and "config differs from the run being resumed (train.lr: 1e+30 -> 0.001)" in err
    code, _, err = cli("run", tiny_config_file, "--out", tmp_path / "new", *FAST, "--set", "train.lr=1e-3")
    assert code == 0, err


def test_a_loss_that_turns_non_finite_stops_at_that_epoch(tmp_path, tiny_config_file, cli, monkeypatch):
    import torch

    from blend_core import training

    real, calls = training.validation_loss, []

    def turns_nan(model, task, train, device):
        calls.append(1)
        loss = real(model, task, train, device)
        return loss if len(calls) < 2 else torch.full_like(loss, math.nan)

    monkeypatch.setattr(training, "validation_loss", turns_nan)
    run = tmp_path / "run"
    code, _, err = cli("run", tiny_config_file, "--out", run, *FAST)
    assert code == 3 and _diverged("teacher", 1, "0.001").fullmatch(err), err
    assert not (run / "checkpoints" / "teacher.pt").exists()


def test_models_trained_at_once_stop_naming_the_seed(tmp_path, tiny_config_file, cli):
    code, _, err = cli("run", tiny_config_file, "--out", tmp_path / "seeds", "--seeds", "2", "--at-once", *FAST,
                       "--set", "train.lr=1e30")
    last = err.splitlines(keepends=True)[-1]  # after the note that --at-once on a CPU is rarely faster
    assert code == 3 and _diverged("teacher (seed 0)", 0, "1e+30").fullmatch(last), err
    assert not list((tmp_path / "seeds").rglob("teacher.pt"))


@pytest.mark.parametrize("at_once", [False, True])
def test_fit_and_fit_many_raise_on_a_non_finite_validation_loss(builtin_plugins, tiny_raw, at_once):
    import torch

    from blend_core.build import build_task, load_data
    from blend_core.config import build_config
    from blend_core.controls import build_any_role
    from blend_core.errors import TrainingDiverged
    from blend_core.multi import fit_many
    from blend_core.training import fit

    tiny_raw["train"].update(lr=1e30, max_epochs=2)
    registry = builtin_plugins.registry
    config = build_config(tiny_raw, registry)
    task = build_task(config, registry, load_data(config, registry)[1], torch.device("cpu"))
    model, objective = build_any_role("baseline", config, registry, task, torch.device("cpu"))
    with pytest.raises(TrainingDiverged, match=r"baseline(\[0\])?: validation loss is"):
        if at_once:
            fit_many([model], task, config.train, torch.device("cpu"), role="baseline", objectives=[objective])
        else:
            fit(model, task, config.train, torch.device("cpu"), role="baseline", objective=objective)
