"""End to end: `blend run` on an MC_Maze-shaped NLB file, NLB submissions, `blend predict` into NWB."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from blend_nwb.synthetic import write_nlb_file

pytest.importorskip("blend_core.runner")


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory):
    from blend_core.cli import main

    root = tmp_path_factory.mktemp("run")
    path = write_nlb_file(root / "sub-synth_desc-train_behavior+ecephys.nwb", dataset="mc_maze",
                          n_trials=200, n_heldin=20, n_heldout=6, n_conditions=9, seed=2)
    config = {
        "data": {"type": "nwb", "path": str(path), "dataset": "mc_maze"},
        "backbone": {"type": "ndt", "num_layers": 1, "d_model": 16, "ffn_dim": 32, "num_heads": 2},
        "privileged": {"type": "mlp", "fusion": "concat", "hidden_dim": 8, "out_dim": 4},
        "distillation": {"alpha": 0.5, "type": "correlation"},
        "train": {"max_epochs": 1, "batch_size": 32, "warmup_steps": 2, "progress": False, "device": "cpu"},
    }
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = root / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    return path, out


def test_submissions_reproduce_metrics(maze_run):
    evaluation = pytest.importorskip("nlb_tools.evaluation")
    _, out = maze_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"teacher", "student", "baseline"}
    for role, scores in metrics.items():
        theirs = evaluation.evaluate(str(out / "nlb-target.h5"), str(out / f"submission-{role}.h5"))
        theirs = theirs[0]["mc_maze_split"]
        assert set(theirs) == {"co-bps", "vel R2", "psth R2", "fp-bps"}
        for name, value in theirs.items():
            assert scores[name] == pytest.approx(float(value), abs=1e-6), (role, name)
    # the core's own metrics agreed with nlb_tools before the hook reported the latter
    assert "core computed" not in (out / "log.txt").read_text()


def test_blend_score_command(maze_run, capsys):
    from blend_core.cli import main

    _, out = maze_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert main(["score", str(out / "submission-baseline.h5"), str(out / "nlb-target.h5"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["mc_maze"]
    assert scores == pytest.approx({k: metrics["baseline"][k] for k in scores}, abs=1e-6)
    assert main(["score", str(out / "nope.h5"), str(out / "nlb-target.h5")]) == 2
    assert capsys.readouterr().err == f"error: {out / 'nope.h5'}: file not found\n"


def test_score_submission_matches_metrics(maze_run):
    from blend_nwb.evaluation import score_submission

    _, out = maze_run
    metrics = json.loads((out / "metrics.json").read_text())
    scores = score_submission(out / "submission-student.h5", out / "nlb-target.h5")["mc_maze"]
    for name, value in scores.items():
        assert metrics["student"][name] == pytest.approx(value, abs=1e-6)


def test_predict_writes_new_nwb(maze_run, tmp_path):
    from pynwb import NWBHDF5IO

    from blend_core.cli import main
    from blend_nwb.nwbfile import NWBReader

    path, out = maze_run
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["predict", str(out), "--data", str(path), "--out", str(tmp_path / "pred")]) == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # input untouched
    (written,) = list((tmp_path / "pred").glob("*.nwb"))
    assert written != path
    with NWBHDF5IO(str(written), "r") as io:
        nwb = io.read()
        table = nwb.processing["blend"]["predictions"]
        rates = np.asarray(table["rates"].data[:])
        assert rates.shape[1:] == (180, 26) and np.all(rates >= 0)
        assert len(table["latents"].data) == len(rates)
    with NWBReader(written) as r:  # still a valid NLB-layout session for our reader
        assert r.units(need_heldout=True, need_obs_intervals=True).n_units == 26
