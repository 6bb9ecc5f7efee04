"""The Python API for trained runs (load_run) and `blend predict` on a --seeds run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from blend_core.api import BlendError, load_run
from blend_core.cli import main

_RUNS: dict[str, object] = {}


@pytest.fixture
def seeds_run(tiny_raw, tmp_path_factory):
    """One tiny 2-seed run (1 epoch), trained once and shared by this module's tests."""
    if "run" not in _RUNS:
        root = tmp_path_factory.mktemp("loaded")
        tiny_raw["train"]["max_epochs"] = 1
        (root / "config.yaml").write_text(yaml.safe_dump(tiny_raw))
        assert main(["run", str(root / "config.yaml"), "--out", str(root / "run"), "--seeds", "2"]) == 0
        _RUNS["run"] = root / "run"
    return _RUNS["run"]


def test_predict_from_an_array_matches_the_runs_own_predictions(seeds_run):
    run = load_run(seeds_run, seed=1)
    assert run.input_shape == (None, 12, 12)  # TINY: 12 window bins, 12 held-in neurons
    assert run.config["train"]["seed"] == 1 and "co-bps" in run.metrics["student"]
    own = run.predictions()
    spikes = run._built.data.heldin[:5, :12]  # the run's first five trials
    out = run.predict(spikes)
    assert out["rates"].shape == (5, 16, 16)  # window + forward bins; held-in + held-out neurons
    np.testing.assert_allclose(out["rates"], own["rates"][:5], rtol=1e-5, atol=1e-6)
    as_tensor = run.predict(torch.as_tensor(spikes))  # a tensor works as well
    np.testing.assert_allclose(as_tensor["latents"], out["latents"])


def test_the_set_of_seeds_stacks_every_seeds_output(seeds_run):
    runs = load_run(seeds_run)
    assert [r.run_dir.name for r in runs.runs] == ["seed-0", "seed-1"] and runs.summary["student"]
    out = runs.predict(np.zeros((3, 12, 12)))
    assert out["rates"].shape == (2, 3, 16, 16)
    assert not np.allclose(out["rates"][0], out["rates"][1])  # two seeds, two models
    assert runs.seed(0).run_dir.name == "seed-0"


@pytest.mark.parametrize("shape, message", [
    ((3, 12), "spikes: expected a (trials, bins, held-in neurons) array of shape (N, 12, 12), got shape (3, 12)"),
    ((3, 12, 5), "spikes: expected 12 held-in neurons (the run's data; axis 2), got 5"),
    ((3, 7, 12), "spikes: expected 12 time bins or 16 (with the forward bins, ignored) (axis 1), got 7"),
])
def test_arrays_that_do_not_fit_are_named(seeds_run, shape, message):
    run = load_run(seeds_run, seed=0)
    with pytest.raises(BlendError) as info:
        run.predict(np.zeros(shape))
    assert str(info.value) == message
    with pytest.raises(BlendError, match="finite, non-negative"):
        run.predict(-np.ones((1, 12, 12)))


def test_load_run_errors(seeds_run, tmp_path):
    with pytest.raises(BlendError, match="seed 5: not in .* \\(seeds: 0, 1\\)"):
        load_run(seeds_run, seed=5)
    with pytest.raises(BlendError, match="no such run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(BlendError, match="the teacher needs behavior"):
        load_run(seeds_run, seed=0, role="teacher")


def test_blend_predict_on_a_seeds_run_predicts_every_seed(seeds_run, capsys):
    assert main(["predict", str(seeds_run)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(seeds_run / f"seed-{k}" / "predictions" / "predictions.npz") for k in (0, 1)]
    with np.load(printed[1]) as z:
        np.testing.assert_allclose(z["rates"], load_run(seeds_run, seed=1).predictions()["rates"], rtol=1e-6)


def test_an_identity_run_gives_embeddings_and_labels(tmp_path, tiny_identity_raw):
    raw = tiny_identity_raw
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 0
    run = load_run(tmp_path / "run")
    assert run.input_shape is None  # no spike arrays for this task: predictions() instead
    out = run.predictions()
    assert out["embedding"].shape == (60, 4) and len(out["neuron"]) == 60
    predicted = [k for k in out if k.endswith("_pred")]  # one predicted label per neuron, per label set
    assert predicted and all(len(out[k]) == 60 for k in predicted)
    with pytest.raises(BlendError, match="does not take spike arrays; use predictions"):
        run.predict(np.zeros((1, 8, 30)))


def test_predictions_say_which_trial_and_split_each_row_is(seeds_run):
    run = load_run(seeds_run, seed=0)
    own = run.predictions()
    np.testing.assert_array_equal(own["trial"], np.arange(len(own["rates"])))
    np.testing.assert_array_equal(own["split"], run._built.data.split.astype(str))
    assert set(own["split"]) == {"train", "val", "test"}
