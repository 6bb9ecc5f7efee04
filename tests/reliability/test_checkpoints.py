"""Checkpoints hold data, not code: a malicious pickle runs nothing; a foreign, corrupt,
truncated or empty checkpoint is one line naming the file, exit 2; the file is left as it was."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import yaml

from blend_core.rundir import write_marker


class Payload:
    """Unpickling this object would run ``touch MARKER``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _saved_config(raw):
    """The config as ``blend run`` saves it (resolved), so that ``--resume`` accepts it as this run's."""
    from blend_core.build import load_data, resolve_task
    from blend_core.config import build_config, resolved_dict
    from blend_core.plugins import load_plugins

    registry = load_plugins(autoload=False).registry
    config = build_config(copy.deepcopy(raw), registry)
    return resolved_dict(resolve_task(config, registry, load_data(config, registry)[1]))


def _run_dir(tmp_path, tiny_raw, *, config: bool = True):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_marker(run)
    if config:
        (run / "config.yaml").write_text(yaml.safe_dump(_saved_config(tiny_raw)))
    return run


def _evil(path, marker):
    torch.save({"model": {}, "payload": Payload(marker)}, path)
    return path


REFUSED = "not a blend checkpoint (holds objects other than tensors and plain data; refusing to unpickle it)"


def test_malicious_checkpoint_runs_nothing_under_predict(tmp_path, tiny_raw, cli, digest):
    marker = tmp_path / "PWNED"
    run = _run_dir(tmp_path, tiny_raw)
    ckpt = _evil(run / "checkpoints" / "student.pt", marker)
    before = digest(ckpt)
    code, _, err = cli("predict", run)
    assert (code, err) == (2, f"error: {ckpt}: {REFUSED}\n")
    assert not marker.exists() and digest(ckpt) == before
    assert not (run / "predictions").exists()


MISSING_CONFIG = ("config.yaml: missing, so this cannot be checked to be the run being resumed "
                  "(a run saves its config before anything else); use a new --out")


@pytest.mark.parametrize("config", [True, False])
@pytest.mark.parametrize("name", ["teacher.pt", "teacher-last.pt"])
def test_malicious_checkpoint_runs_nothing_under_resume(tmp_path, tiny_raw, tiny_config_file, cli, digest, name,
                                                        config):
    """Also when the run directory holds nothing but the checkpoint (no config.yaml): refused before."""
    marker = tmp_path / "PWNED"
    run = _run_dir(tmp_path, tiny_raw, config=config)
    ckpt = _evil(run / "checkpoints" / name, marker)
    before = digest(ckpt)
    code, _, err = cli("run", tiny_config_file, "--out", run, "--resume")
    expected = f"{ckpt}: {REFUSED}" if config else f"{run}/{MISSING_CONFIG}"
    assert (code, err) == (2, f"error: {expected}\n")
    assert not marker.exists() and digest(ckpt) == before


def _truncated(path):
    torch.save({"model": {"w": torch.ones(64)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind, make, message", [
    ("empty", lambda p: p.write_bytes(b""), "not a readable checkpoint (corrupt, truncated, empty or not a torch file)"),
    ("text", lambda p: p.write_text("not a checkpoint"), "not a readable checkpoint (corrupt, truncated, empty or not a torch file)"),
    ("truncated", _truncated, "not a readable checkpoint (corrupt, truncated, empty or not a torch file)"),
    ("foreign", lambda p: torch.save({"weights": torch.ones(2)}, p), "not a blend checkpoint (missing 'model')"),
    ("list", lambda p: torch.save([1, 2, 3], p), "not a blend checkpoint (missing 'model')"),
])
def test_bad_checkpoint_is_one_line_naming_the_file(tmp_path, tiny_raw, tiny_config_file, cli, digest, kind, make, message):
    run = _run_dir(tmp_path, tiny_raw)
    ckpt = run / "checkpoints" / "teacher.pt"
    make(ckpt)
    before = digest(ckpt)
    code, _, err = cli("run", tiny_config_file, "--out", run, "--resume")
    assert (code, err) == (2, f"error: {ckpt}: {message}\n")
    assert digest(ckpt) == before
    student = run / "checkpoints" / "student.pt"
    make(student)
    code, _, err = cli("predict", run)
    assert (code, err) == (2, f"error: {student}: {message}\n")


def test_a_checkpoint_of_another_model_is_one_line(tmp_path, tiny_raw, tiny_config_file, cli):
    run = _run_dir(tmp_path, tiny_raw)
    ckpt = run / "checkpoints" / "teacher.pt"
    torch.save({"model": {"w": torch.ones(2)}}, ckpt)
    code, _, err = cli("run", tiny_config_file, "--out", run, "--resume")
    assert code == 2 and err.startswith(f"error: {ckpt}: checkpoint does not fit this run's teacher (")
    assert err.count("\n") == 1


def test_resume_state_loads_as_data_only(tmp_path):
    """Everything fit() saves to resume (optimizer, scheduler, generator, history, best state) loads
    under weights_only=True."""
    from blend_core.io import load_checkpoint
    from blend_core.training import RESUME_KEYS, make_generator, make_optimizer, warmup_cosine
    from blend_core.config import TrainConfig
    from blend_core.io import save_torch

    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(list(model.parameters()), TrainConfig(), torch.device("cpu"))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2, 10))
    sched.step()
    state = {"model": model.state_dict(), "distiller": None, "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "generator": make_generator(torch.device("cpu"), 0).get_state(),
             "epoch": 3, "best_val": float("inf"), "best_epoch": -1, "best_state": model.state_dict(),
             "history": [{"epoch": 0, "val_loss": 1.0}]}
    assert set(state) == set(RESUME_KEYS)
    save_torch(tmp_path / "last.pt", state)
    loaded = load_checkpoint(tmp_path / "last.pt", required=RESUME_KEYS)
    assert loaded["epoch"] == 3 and loaded["history"] == state["history"]
    opt.load_state_dict(loaded["optimizer"])
    sched.load_state_dict(loaded["scheduler"])
