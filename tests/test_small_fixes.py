"""Small fixes of issue 11: task keys without task.type, per-seed logs with --at-once, checkpoint_every."""

from __future__ import annotations

import attrs
import torch
import yaml

from blend_core.build import build_role, build_task, load_data, resolve_task
from blend_core.cli import main
from blend_core.config import build_config, resolved_dict


def test_task_keys_without_task_type_configure_the_task_the_data_implies(tiny_config_file, builtin_plugins, capsys):
    assert main(["validate", str(tiny_config_file), "--set", "task.mask_mode=bert"]) == 0, capsys.readouterr().err
    raw = yaml.safe_load(tiny_config_file.read_text())
    raw["task"] = {"mask_mode": "bert"}
    registry = builtin_plugins.registry
    config = build_config(raw, registry)
    _, data = load_data(config, registry)
    resolved = resolve_task(config, registry, data)
    assert resolved.task.type == "neural" and resolved.task.options.mask_mode == "bert"
    assert resolved_dict(resolved)["task"]["type"] == "neural"  # the run directory's config names the task
    assert build_task(config, registry, data, torch.device("cpu")).config.mask_mode == "bert"


def test_a_task_key_typo_without_task_type_is_one_line(tiny_config_file, capsys):
    assert main(["validate", str(tiny_config_file), "--set", "task.mask_mod=bert"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task.mask_mod: unknown key; did you mean 'mask_mode'?" in err


def test_at_once_writes_every_seeds_log(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "seeds"
    code = main(["run", str(tiny_config_file), "--out", str(out), "--seeds", "2", "--at-once",
                 "--set", "train.max_epochs=1"])
    assert code == 0, capsys.readouterr().err
    for seed in ("seed-0", "seed-1"):
        log = (out / seed / "log.txt").read_text()
        assert "teacher" in log and "baseline" in log, seed


def test_checkpoint_every_is_honoured_between_evaluations(tiny_raw, builtin_plugins, monkeypatch, tmp_path):
    """eval_every 3 and checkpoint_every 2: checkpoints at epochs 2 and 4, not only at evaluations."""
    import blend_core.training as training

    registry = builtin_plugins.registry
    config = build_config(tiny_raw, registry)
    train = attrs.evolve(config.train, max_epochs=5, eval_every=3, checkpoint_every=2)
    _, data = load_data(config, registry)
    task = build_task(config, registry, data, torch.device("cpu"))
    model, objective = build_role("baseline", config, registry, task, torch.device("cpu"))
    saved: list[int] = []
    monkeypatch.setattr(training, "save_torch", lambda path, state: saved.append(state["epoch"]))
    training.fit(model, task, train, torch.device("cpu"), role="baseline", objective=objective,
                 checkpoint=tmp_path / "last.pt")
    assert saved[:2] == [1, 3]  # 0-based epochs 1 and 3 are the 2nd and 4th; then the final save
