"""What used to be a traceback, a silent write or a broken promise is one line, exit 2, and nothing is
created or replaced: odd config shapes, corrupt outputs under `blend report`, a directory as config, a
huge unknown type, `blend predict` into folders it did not make or after a kill, a forged run.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml


def _config(tmp_path, raw, change) -> object:
    change(raw)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda r: r.__setitem__("train", {1: 2}), "train.1: unknown key (not a name); expected one of: batch_size,"),
    (lambda r: r.__setitem__("plugins", [{"a": 1}]), "plugins: expected a list of plugin names, got [{'a': 1}]"),
    (lambda r: r["backbone"].__setitem__("type", "x" * 100_000),
     "backbone.type: unknown backbone 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...; available:"),
])
def test_odd_config_shapes_are_one_line(tmp_path, tiny_raw, cli, change, message):
    config = _config(tmp_path, tiny_raw, change)
    code, _, err = cli("run", config, "--out", tmp_path / "run")
    assert code == 2 and err.startswith(f"error: {config}: {message}") and err.count("\n") == 1, err
    assert len(err) < 400 and not (tmp_path / "run").exists()


def test_a_bad_activity_file_pattern_is_one_line(tmp_path, cli):
    """A str.format placeholder other than {stem} (was a KeyError traceback when the data was read)."""
    pytest.importorskip("anndata")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"plugins": ["spatial"], "backbone": {"type": "ndt"}, "data": {
        "type": "anndata", "path": str(tmp_path / "x.h5ad"), "activity_file": "{nope}.h5ad"}}))
    code, _, err = cli("validate", config)
    assert (code, err) == (2, f"error: {config}: data.activity_file: unknown placeholder {{nope}} in "
                              "'{nope}.h5ad'; allowed: {stem}\n")


def test_a_directory_given_as_config_says_so(tmp_path, cli):
    assert cli("run", tmp_path) == (2, "", f"error: {tmp_path}: is a directory; expected a YAML config file\n")


# ------------------------------------------------------------------ blend report

@pytest.mark.parametrize("name, content, message", [
    ("metrics.json", b'{"student": {"co-bps": 0.1', "not readable JSON"),
    ("metrics.json", b"[1, 2]", "expected a JSON dict, got list"),
    ("metrics.json", b'{"student": 3}', "not blend's metrics (expected an object of role -> metrics)"),
    ("history.csv", b"role,epoch,val_loss\nteacher,zero,1\n", "line 2 does not fit the header"),
    ("history.csv", b"role,epoch,val_loss\nteacher,0,x\n", "line 2 holds a value that is not a number"),
    ("history.csv", b"\xff\xfe\x00garbage\n", "not UTF-8 text"),
    ("report-data.npz", b"PK\x03\x04 truncated", "not a readable report-data.npz"),
])
def test_report_on_a_corrupt_output_is_one_line(run_copy, cli, name, content, message):
    pytest.importorskip("matplotlib")
    _, run = run_copy
    (run / name).write_bytes(content)
    code, _, err = cli("report", run)
    assert code == 2 and err.startswith(f"error: {run / name}: {message}") and err.count("\n") == 1, err


def test_report_drops_a_torn_history_row(run_copy, cli):
    pytest.importorskip("matplotlib")
    _, run = run_copy
    with open(run / "history.csv", "ab") as f:
        f.write(b"teacher,1,0.5,1e")  # killed mid-row (mid-number: "1e-05")
    code, _, err = cli("report", run)
    assert code == 0, err


def test_report_on_a_folder_that_is_not_a_run_creates_nothing(tmp_path, cli, snapshot):
    pytest.importorskip("matplotlib")
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = cli("report", tmp_path)
    assert code == 2 and "not a finished run" in err
    assert snapshot(tmp_path) == before and not (tmp_path / "report").exists()


# ------------------------------------------------------------------ blend predict

def test_predict_refusing_leaves_no_empty_out(run_copy, tmp_path, cli):
    """Refused once the model is built (a student of another shape): --out was made before."""
    _, run = run_copy
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["backbone"]["d_model"] = 32
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    out = tmp_path / "preds"
    code, _, err = cli("predict", run, "--out", out)
    assert code == 2 and "does not match the trained student's layout" in err and not out.exists()


def test_predict_overwrite_needs_blends_marker(run_copy, tmp_path, cli, snapshot):
    _, run = run_copy
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "predictions.npz").write_bytes(b"the user's own file")
    before = snapshot(mine)
    code, _, err = cli("predict", run, "--out", mine, "--overwrite")
    assert (code, err) == (2, f"error: {mine}: not a folder blend created (no run.json) and not empty; blend "
                              "writes only into a new or empty folder, or one it created\n")
    assert snapshot(mine) == before
    out = tmp_path / "preds"
    assert cli("predict", run, "--out", out)[0] == 0  # a folder predict made: replaced with --overwrite
    assert cli("predict", run, "--out", out)[0] == 2
    assert cli("predict", run, "--out", out, "--overwrite")[0] == 0


def test_a_killed_predict_does_not_block_the_next(run_copy, tmp_path, cli):
    _, run = run_copy
    out = tmp_path / "preds"
    assert cli("predict", run, "--out", out)[0] == 0
    (out / "predictions.npz").rename(out / ".predictions.npz.ab12cd34.tmp")  # killed before the rename
    code, stdout, err = cli("predict", run, "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["predictions.npz", "run.json"]
    assert np.load(stdout.strip())["rates"].ndim == 3


def test_ctrl_c_offers_resume_only_where_there_is_one(run_copy, cli, monkeypatch):
    from blend_core import predict

    _, run = run_copy

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "write_npz", interrupted)
    assert cli("predict", run) == (130, "", "interrupted\n")


# ------------------------------------------------------------------ a forged marker

def test_resume_refuses_a_forged_marker_without_a_saved_config(tmp_path, tiny_config_file, cli, snapshot):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"blend": "0"}))
    (folder / "metrics.json").write_text("the user's own file")
    before = snapshot(folder)
    code, _, err = cli("run", tiny_config_file, "--out", folder, "--resume")
    assert (code, err) == (2, f"error: {folder}/config.yaml: missing, so this cannot be checked to be the run "
                              "being resumed (a run saves its config before anything else); use a new --out\n")
    assert {k: v for k, v in snapshot(folder).items() if k != "run.lock"} == before
