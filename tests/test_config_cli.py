"""Config on the command line: dropping keys, switching a component's type, --print-config, and
`blend plugins` / `blend validate` wording."""

from __future__ import annotations

import pytest
import yaml

from blend_core.cli import main
from blend_core.config import apply_overrides


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("how", [["--set", "backbone.dropout=null"], ["--unset", "backbone.dropout"]])
def test_null_or_unset_drops_a_key(tiny_config_file, capsys, how):
    default = yaml.safe_load(cli(capsys, "validate", str(tiny_config_file), "--print-config")[1])["backbone"]
    raw = yaml.safe_load(tiny_config_file.read_text())
    raw["backbone"]["dropout"] = 0.4
    tiny_config_file.write_text(yaml.safe_dump(raw))
    code, out, _ = cli(capsys, "validate", str(tiny_config_file), *how, "--print-config")
    assert code == 0
    assert yaml.safe_load(out)["backbone"]["dropout"] == default["dropout"] != 0.4  # the default, not the file's


def test_unset_then_set_keeps_command_line_order(tiny_raw):
    raw = apply_overrides(tiny_raw, ["train.seed=null", "train.seed=7", "teacher=null", "distillation.losses=null"])
    assert raw["train"]["seed"] == 7 and "teacher" not in raw


def test_print_config_prints_every_default_and_runs_nothing(tmp_path, tiny_config_file, capsys):
    out_dir = tmp_path / "run"
    code, out, err = cli(capsys, "run", str(tiny_config_file), "--out", str(out_dir), "--print-config",
                         "--set", "train.max_epochs=7")
    assert (code, err) == (0, "")
    resolved = yaml.safe_load(out)
    assert resolved["train"]["max_epochs"] == 7 and resolved["train"]["lr"] == 0.001  # a default, filled in
    assert not out_dir.exists()


def test_switching_a_type_on_the_command_line_drops_the_old_types_keys(tiny_config_file, capsys):
    # the template plugin's recipe on an NDT config: d_model, ffn_dim, num_heads are not GRU options
    code, out, err = cli(capsys, "-p", "gru", "validate", str(tiny_config_file),
                         "--set", "backbone.type=gru", "--set", "teacher.type=ndt", "--print-config")
    assert code == 0, err
    assert err == ("note: --set backbone.type=gru: dropped backbone.d_model, backbone.ffn_dim, "
                   "backbone.num_heads (not options of 'gru')\n")
    resolved = yaml.safe_load(out)
    assert resolved["backbone"]["type"] == "gru" and resolved["teacher"]["type"] == "ndt"
    assert resolved["backbone"]["num_layers"] == 2  # a key both types have is kept


def test_switch_keeps_keys_set_on_the_command_line_and_section_keys(tiny_raw, builtin_plugins):
    notes: list[str] = []
    raw = apply_overrides(tiny_raw, ["privileged.type=linear", "distillation.type=soft",
                                     "distillation.temperature=2"], builtin_plugins.registry, notes)
    assert raw["privileged"] == {"type": "linear", "fusion": "concat", "out_dim": 4}  # fusion: the section's
    assert raw["distillation"] == {"alpha": 0.5, "type": "soft", "temperature": 2}
    assert notes == ["--set privileged.type=linear: dropped privileged.hidden_dim (not options of 'linear')"]


def test_plugins_lists_epoch_end_hooks_and_aligns_long_names(capsys):
    from blend_core.plugins import load_plugins

    code, out, _ = cli(capsys, "plugins")
    assert code == 0
    lines = out.splitlines()
    tracking = next(i for i, line in enumerate(lines) if line.startswith("blend_core.builtin.tracking"))
    assert "blend_epoch_end" in lines[tracking + 1]
    comps = [c for cs in load_plugins().registry.by_plugin().values() for c in cs]
    rows = {c: next(line for line in lines if line[4:].startswith(c.kind) and line.endswith(c.description)
                       and c.name in line.split()) for c in comps}
    columns = {row.index(c.description) for c, row in rows.items()}
    assert len(columns) == 1  # every description starts in one column, however long the names


def test_validate_counts_losses_in_words(tiny_config_file, capsys):
    code, out, _ = cli(capsys, "validate", str(tiny_config_file))
    assert code == 0 and "1 distillation loss;" in out and "loss(es)" not in out


def test_resume_with_overwrite_is_refused(tmp_path, tiny_config_file, capsys):
    code, _, err = cli(capsys, "run", str(tiny_config_file), "--out", str(tmp_path / "r"), "--resume", "--overwrite")
    assert code == 2 and err.startswith("error: --resume and --overwrite: pick one") and not (tmp_path / "r").exists()


def test_resume_with_seeds_that_do_not_fit_the_layout_is_refused(tmp_path, tiny_config_file, capsys):
    single, seeds = tmp_path / "single", tmp_path / "seeds"
    (single / "checkpoints").mkdir(parents=True)
    (single / "config.yaml").write_text("{}")
    for k in (0, 1):
        (seeds / f"seed-{k}").mkdir(parents=True)
        (seeds / f"seed-{k}" / "config.yaml").write_text("{}")
    code, _, err = cli(capsys, "run", str(tiny_config_file), "--out", str(single), "--resume", "--seeds", "2")
    assert (code, err) == (2, f"error: --resume --seeds 2: {single} holds a single-seed run; resume it without "
                              "--seeds, or start the seeds in a new --out\n")
    code, _, err = cli(capsys, "run", str(tiny_config_file), "--out", str(seeds), "--resume")
    assert (code, err) == (2, f"error: --resume: {seeds} holds a --seeds run of 2 seeds; resume it with --seeds 2\n")
    assert sorted(p.name for p in seeds.iterdir()) == ["seed-0", "seed-1"]  # nothing written


def test_demo_reruns_keep_only_the_newest_backup(tmp_path, capsys, monkeypatch):
    import types

    import blend_core.runner as runner
    from blend_core.rundir import write_marker

    out = tmp_path / "runs" / "demo"
    names = ["demo.old-20261201-100000", "demo.old-20261202-100000", "demo.old-20261202-100000-1"]
    for name in names:
        (tmp_path / "runs" / name).mkdir(parents=True)
        write_marker(tmp_path / "runs" / name)
    (tmp_path / "runs" / "demo.old-mine").mkdir()  # not a blend run directory: never touched
    monkeypatch.setattr(runner, "run", lambda config, plugins, out_dir, **kw: types.SimpleNamespace(
        metrics={"student": {"co-bps": 0.1}}, out_dir=out_dir))
    assert cli(capsys, "demo", "--out", str(out), "--overwrite")[0] == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["demo.old-20261202-100000-1", "demo.old-mine"]


def test_at_once_on_cpu_says_it_differs_and_silences_the_vmap_warning(tmp_path, tiny_config_file, capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, "run", str(tiny_config_file), "--out", str(tmp_path / "r"), "--seeds", "2",
                           "--at-once", "--set", "train.max_epochs=1")
    assert code == 0
    assert "note: --at-once on a CPU" in err and "differ slightly from sequential seeds" in err
    assert not [w for w in caught if "batching rule" in str(w.message)]
    assert not list((tmp_path / "r").rglob("run.lock"))  # finished: no lock left in the run or its seeds
