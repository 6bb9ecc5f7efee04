"""End to end: `blend run` on an MC_Maze-shaped NLB file, NLB submissions, `blend predict` into NWB."""

from __future__ import annotations

import json

import h5py

import numpy as np
import pytest
import yaml

from blend_nwb.synthetic import write_nlb_file

pytest.importorskip("blend_core.runner")


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory):
    from blend_core.api import run_blend as main

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
    assert {"teacher", "student", "baseline"} <= set(metrics)  # (and any reference rows the core adds)
    for role in ("teacher", "student", "baseline"):
        scores = metrics[role]
        theirs = evaluation.evaluate(str(out / "nlb-target.h5"), str(out / f"submission-{role}.h5"))
        theirs = theirs[0]["mc_maze_split"]
        assert set(theirs) == {"co-bps", "vel R2", "psth R2", "fp-bps"}
        for name, value in theirs.items():
            assert scores[name] == pytest.approx(float(value), abs=1e-6), (role, name)
    # the core's own metrics agreed with nlb_tools before the hook reported the latter
    assert "core computed" not in (out / "log.txt").read_text()


def test_blend_score_command(maze_run, capsys):
    from blend_core.api import run_blend as main

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


def test_predict_writes_derived_nwb(maze_run):
    """A small new NWB file: rates in Hz and latents per bin on the session clock, units, provenance;
    pynwb reads back what predict returned (predictions.npz); nwbinspector finds nothing serious."""
    from pynwb import NWBHDF5IO

    from blend_core.api import run_blend as main
    from blend_nwb.cache import sha256_file
    from blend_nwb.nlb import load_nlb

    path, out = maze_run
    before = sha256_file(path)
    assert main(["predict", str(out), "--data", str(path)]) == 0
    assert sha256_file(path) == before  # input untouched
    pred = out / "predictions"
    written = pred / f"{path.stem}_blend-predictions.nwb"
    with h5py.File(written, "r") as f:  # derived, not a copy of the session: no spikes, no behavior
        assert "units" not in f and "behavior" not in f.get("processing", {}) and not len(f.get("acquisition", {}))
    npz = np.load(pred / "predictions.npz")
    res = load_nlb(path, "mc_maze")
    T, fp, n = 140, 40, len(res.trial_ids)
    with NWBHDF5IO(str(written), "r") as io:
        nwb = io.read()
        mod = nwb.processing["blend"]
        windows = mod["windows"].to_dataframe()
        assert len(windows) == n and (np.diff(windows["start_time"]) > 0).all()
        rows = np.searchsorted(res.trial_ids, windows["source_trial"].to_numpy())
        assert (res.trial_ids[rows] == windows["source_trial"].to_numpy()).all()
        np.testing.assert_allclose(windows["start_time"], res.first_bins[rows] * 0.005)
        with h5py.File(path, "r") as src:  # windows start at the first bin at or after move onset - 250 ms
            onset = src["intervals/trials/move_onset_time"][()][windows["source_trial"].to_numpy()]
        assert ((windows["start_time"] - (onset - 0.25)) >= -1e-9).all()
        assert ((windows["start_time"] - (onset - 0.25)) < 0.005).all()
        rates, forward = mod["rates"], mod["rates_forward"]
        assert rates.unit == "Hz" and rates.data.shape == (n * T, 26) and forward.data.shape == (n * fp, 26)
        np.testing.assert_allclose(rates.data[:].reshape(n, T, 26), npz["rates"][rows, :T] / 0.005, rtol=1e-6)
        np.testing.assert_allclose(forward.data[:].reshape(n, fp, 26), npz["rates"][rows, T:] / 0.005, rtol=1e-6)
        np.testing.assert_allclose(rates.timestamps[:T], windows["start_time"].iloc[0] + np.arange(T) * 0.005)
        latents = mod["latents"]
        np.testing.assert_allclose(latents.data[:].reshape(n, T, -1), npz["latents"][rows, :T], rtol=1e-6)
        neurons = mod["neurons"].to_dataframe()
        with h5py.File(path, "r") as src:
            heldout = src["units/heldout"][()].astype(bool)
        assert neurons["heldout"].tolist() == [False] * 20 + [True] * 6
        assert sorted(neurons["source_unit_id"]) == list(range(26))
        assert heldout[neurons["source_unit_id"].to_numpy()].tolist() == neurons["heldout"].tolist()
        prov = json.loads(nwb.notes)
        assert prov["source"]["sha256"] == before and prov["source"]["path"] == str(path.resolve())
        assert prov["checkpoint"]["sha256"] == sha256_file(out / "checkpoints" / "student.pt")
        assert prov["config"]["data"]["dataset"] == "mc_maze" and prov["blend"]
        assert nwb.session_start_time.isoformat().startswith("2021-01-01")
    nwbinspector = pytest.importorskip("nwbinspector")
    serious = [f"{m.importance.name}: {m.message}" for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(written))
               if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION")]
    assert serious == []


def test_run_records_source_sha256(maze_run):
    from blend_nwb.cache import sha256_file

    path, out = maze_run
    record = json.loads((out / "nwb-source.json").read_text())
    assert record["files"]["train"] == {"path": str(path.resolve()), "sha256": sha256_file(path),
                                        "bytes": path.stat().st_size}
    assert record["dataset"] == "mc_maze" and record["phase"] == "val"
