"""The CLI end to end on tiny synthetic data, and its one-line errors (exit 2, no traceback)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from blend_core.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_writes_metrics_config_and_checkpoints(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "run", str(tiny_config_file), "--out", str(out),
                              "--set", "train.max_epochs=3")
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["baseline", "teacher", "student", "smoothing", "oracle", "val"]  # val: selection's
    assert list(metrics.pop("val")) == ["baseline", "teacher", "student", "smoothing", "oracle"]
    for role in metrics:
        assert {"co-bps", "vel R2", "psth R2", "fp-bps"} <= set(metrics[role])
        assert all(np.isfinite(v) for v in metrics[role].values())
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["max_epochs"] == 3 and saved["backbone"]["d_model"] == 16
    for role in ("teacher", "student", "baseline"):
        assert (out / "checkpoints" / f"{role}.pt").exists()
        assert not (out / "checkpoints" / f"{role}-last.pt").exists()
    assert (out / "log.txt").read_text()
    assert "co-bps" in stdout and "student" in stdout


def test_existing_output_directory_is_refused(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "run", str(tiny_config_file), "--out", str(out))
    assert code == 2
    assert err == (f"error: {out}: not a blend run directory (no run.json) and not empty; "
                   "blend writes only into a new or empty folder\n")
    assert (out / "precious.txt").read_text() == "keep me"


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"))
    assert (code, err) == (2, f"error: {tmp_path / 'nope.yaml'}: config file not found\n")


def test_config_errors_are_one_line_each(tmp_path, tiny_raw, capsys):
    tiny_raw["backbone"]["num_layers"] = "four"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    code, _, err = run_cli(capsys, "validate", str(path), "--set", "train.max_epoch=1")
    assert code == 2
    assert err.splitlines() == [  # each problem names where it came from: the file or the command line
        f"error: {path}: backbone.num_layers: expected int, got 'four'",
        "--set train.max_epoch=1 (command line): train.max_epoch: unknown key; did you mean 'max_epochs'?",
    ]
    assert "Traceback" not in err


def test_unknown_component(tiny_config_file, capsys):
    code, _, err = run_cli(capsys, "validate", str(tiny_config_file), "--set", "privileged.type=cnn")
    assert code == 2
    assert err == ("error: --set privileged.type=cnn (command line): privileged.type: unknown encoder 'cnn'; "
                   "available: identity, linear, mlp\n")


def test_bad_set(tiny_config_file, capsys):
    code, _, err = run_cli(capsys, "validate", str(tiny_config_file), "--set", "train.seed")
    assert (code, err) == (2, "error: --set 'train.seed': expected KEY=VALUE, e.g. train.max_epochs=5\n")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception):
        main(["--debug", "run", str(tmp_path / "nope.yaml")])


def test_plugins_lists_builtins(capsys):
    code, out, _ = run_cli(capsys, "plugins")
    assert code == 0
    assert "blend_core.builtin.backbones" in out and "(built-in)" in out
    for name in ("ndt", "stndt", "lfads", "synthetic", "neural", "correlation", "feature", "mlp"):
        assert f" {name} " in out


def test_resume_finishes_an_interrupted_run(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "run", str(tiny_config_file), "--out", str(out))[0] == 0
    first = json.loads((out / "metrics.json").read_text())
    # simulate a crash before the baseline was saved and resume
    (out / "checkpoints" / "baseline.pt").unlink()
    (out / "metrics.json").unlink()
    assert run_cli(capsys, "run", str(tiny_config_file), "--out", str(out), "--resume",
                   "--set", "train.progress=true", "--set", "train.threads=1")[0] == 0  # cosmetic: allowed
    again = json.loads((out / "metrics.json").read_text())
    assert again["teacher"] == first["teacher"] and again["student"] == first["student"]  # loaded, not retrained
    assert again["baseline"] == pytest.approx(first["baseline"], abs=1e-5)  # retrained with the same seed


def test_resume_refuses_a_changed_config(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "run", str(tiny_config_file), "--out", str(out))[0] == 0
    code, _, err = run_cli(capsys, "run", str(tiny_config_file), "--out", str(out), "--resume",
                           "--set", "train.lr=0.01")
    assert code == 2 and "config differs from the run being resumed" in err


def test_predict_writes_student_rates_without_behavior(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "run", str(tiny_config_file), "--out", str(out))[0] == 0
    code, stdout, _ = run_cli(capsys, "predict", str(out))
    assert code == 0
    pred = np.load(stdout.strip())
    assert pred["rates"].shape == (48, 16, 16) and (pred["rates"] > 0).all()
    code, _, err = run_cli(capsys, "predict", str(out))
    assert code == 2 and "output directory exists" in err
    code, _, err = run_cli(capsys, "predict", str(out), "--data", "x.nwb")
    assert code == 2 and err == "error: --data: data source 'synthetic' reads no files (it has no 'path' key)\n"


@pytest.mark.parametrize("at_once", [False, True])
def test_seeds_summarise_mean_sd_and_gap(tmp_path, tiny_config_file, capsys, at_once):
    out = tmp_path / "seeds"
    argv = ["run", str(tiny_config_file), "--out", str(out), "--seeds", "2", "--set", "train.seed=7"]
    code, stdout, _ = run_cli(capsys, *argv, *(["--at-once"] if at_once else []))
    assert code == 0
    per_seed = [json.loads((out / f"seed-{s}" / "metrics.json").read_text()) for s in (7, 8)]
    assert yaml.safe_load((out / "seed-8" / "config.yaml").read_text())["train"]["seed"] == 8
    summary = json.loads((out / "summary.json").read_text())
    for role in ("baseline", "teacher", "student"):
        values = [m[role]["vel R2"] for m in per_seed]
        assert summary[role]["vel R2"]["values"] == pytest.approx(values)
        assert summary[role]["vel R2"]["mean"] == pytest.approx(np.mean(values))
        assert summary[role]["vel R2"]["sd"] == pytest.approx(np.std(values, ddof=1))
    gap = [m["student"]["co-bps"] - m["baseline"]["co-bps"] for m in per_seed]
    assert summary["student - baseline"]["co-bps"]["values"] == pytest.approx(gap)
    assert "±" in stdout and "student - baseline" in stdout


def test_bad_data_leaves_no_run_directory(tmp_path, tiny_config_file, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", str(tiny_config_file), "--out", str(out),
                           "--set", "data.split_fractions=[1.0, 0.0, 0.0]")
    assert code == 2 and err == (f"error: {tiny_config_file}: data.n_trials: too few trials for split_fractions "
                                 "[1.0, 0.0, 0.0]: no val/test trials (got 48 trials)\n")
    assert not out.exists()  # fixing the input and running again just works
