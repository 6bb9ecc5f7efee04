"""`blend predict` on a test-phase run: the desc-test file's trials, written where the user asks.

A tiny desc-train / desc-test pair, a one-epoch ``data.phase: test`` run, then ``blend predict
RUN --out ELSEWHERE`` (outside the run directory): the leaderboard submission holds the test
file's trials, the derived NWB file names the test file and its trials, and its provenance
still carries the run's config and the checkpoint's checksum.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml

from blend_nwb.synthetic import write_nlb_file

pytest.importorskip("blend_core.runner")

N_TRAIN, N_TEST, N_IN, N_OUT = 40, 12, 8, 3


@pytest.fixture(scope="module")
def test_phase_run(tmp_path_factory, tiny_test_phase_config):
    from blend_core.api import run_blend as main

    root = tmp_path_factory.mktemp("testphase")
    train = root / "sub-x_desc-train_behavior+ecephys.nwb"
    test = root / "sub-x_desc-test_ecephys.nwb"
    write_nlb_file(train, dataset="mc_maze", n_trials=N_TRAIN, n_test_trials=N_TEST, n_heldin=N_IN,
                   n_heldout=N_OUT, seed=5, test_path=test)
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_test_phase_config(train)))
    run = root / "run"
    assert main(["run", str(cfg), "--out", str(run)]) == 0
    return train, test, run


def test_predict_test_phase_outside_the_run_dir(test_phase_run, tmp_path):
    from pynwb import NWBHDF5IO

    from blend_core.api import run_blend as main
    from blend_nwb.cache import sha256_file
    from blend_nwb.nlb import load_nlb

    train, test, run = test_phase_run
    out = tmp_path / "elsewhere" / "preds"
    assert main(["predict", str(run), "--out", str(out)]) == 0
    res = load_nlb(train, "mc_maze", phase="test", test_path=test)
    n_fit, n_test = len(res.train_rows), len(res.eval_rows)
    assert n_test == len(res.trial_ids) > 0 and n_fit > 0

    # the leaderboard file: NLB train + val trials in train_*, the test file's trials in eval_*
    npz = np.load(out / "predictions.npz")
    with h5py.File(out / "submission-student.h5", "r") as f:
        g = f["mc_maze"]
        shapes = {k: g[k].shape for k in g}
        assert shapes == {
            "train_rates_heldin": (n_fit, 140, N_IN), "train_rates_heldout": (n_fit, 140, N_OUT),
            "eval_rates_heldin": (n_test, 140, N_IN), "eval_rates_heldout": (n_test, 140, N_OUT),
            "eval_rates_heldin_forward": (n_test, 40, N_IN), "eval_rates_heldout_forward": (n_test, 40, N_OUT)}
        assert all(g[k].dtype == np.float32 for k in g)
        np.testing.assert_allclose(g["eval_rates_heldout"][()], npz["rates"][res.eval_rows, :140, N_IN:], rtol=1e-6)
        np.testing.assert_allclose(g["train_rates_heldin"][()], npz["rates"][res.train_rows, :140, :N_IN], rtol=1e-6)

    # the derived NWB file: about the test file, its trials, and the run that made it
    written = out / f"{test.stem}_blend-predictions.nwb"
    with NWBHDF5IO(str(written), "r") as io:
        nwb = io.read()
        mod = nwb.processing["blend"]
        windows = mod["windows"].to_dataframe()
        assert len(windows) == n_test and set(windows["split"]) == {"test"}
        assert sorted(windows["source_trial"]) == sorted(res.trial_ids.tolist())
        with h5py.File(test, "r") as src:
            split = src["intervals/trials/split"][()].astype(str)
        assert (split[windows["source_trial"].to_numpy()] == "test").all()
        rates = mod["rates"]
        assert rates.unit == "Hz" and rates.data.shape == (n_test * 140, N_IN + N_OUT)
        rows = res.eval_rows[np.argsort(res.first_bins, kind="stable")]  # windows in time order
        np.testing.assert_allclose(rates.data[:].reshape(n_test, 140, -1), npz["rates"][rows, :140] / 0.005, rtol=1e-6)
        prov = json.loads(nwb.notes)
        assert prov["source"]["path"] == str(test.resolve()) and prov["source"]["sha256"] == sha256_file(test)
        assert prov["run_dir"] == str(run.resolve())
        assert prov["checkpoint"]["sha256"] == sha256_file(run / "checkpoints" / "student.pt")
        assert prov["config"]["data"]["phase"] == "test"
    nwbinspector = pytest.importorskip("nwbinspector")
    serious = [f"{m.importance.name}: {m.message}" for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(written))
               if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION")]
    assert serious == []
