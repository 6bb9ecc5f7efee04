"""The robustness suite's neural generators: each stated assumption holds on a written file."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from blend_nwb import robustness as R
from blend_nwb.nlb import load_nlb
from blend_nwb.synthetic import write_nlb_file, write_session

SMALL = dict(n_trials=60, n_heldin=18, n_heldout=6)


@pytest.fixture(scope="module", params=["hidden_units", "pupil", "context"])
def written(request, tmp_path_factory):
    cfg = R.ContinuousConfig(privileged=request.param, seed=3, **SMALL)
    path = tmp_path_factory.mktemp("robust") / f"{request.param}.nwb"
    write_session(path, R.generate_session(cfg))
    return cfg, path, R.file_statistics(path)


def test_renewal_spikes_are_gamma_with_a_refractory_period():
    rng = np.random.default_rng(0)
    t = R.renewal_spikes(np.full(200_000, 20.0), shape=4.0, refractory_ms=2.0, rng=rng)  # 200 s at 20 Hz
    isi = np.diff(t)
    assert abs(len(t) / 200.0 - 20.0) < 1.0  # the dead time is compensated: the rate is kept
    assert isi.min() >= 2e-3 - 1e-12
    assert 0.42 < isi.std() / isi.mean() < 0.55  # gamma shape 4: CV 0.5 (Poisson would be 1)


def test_spike_statistics_hold(written):
    cfg, _, stats = written
    assert stats["refractory_violations"].sum() == 0
    lo, hi = cfg.rate_range_hz
    assert np.all(stats["rate_hz"] > 0.5 * lo) and np.all(stats["rate_hz"] < 1.3 * hi)
    assert np.percentile(stats["rate_hz"], 90) / np.percentile(stats["rate_hz"], 10) > 3  # log-normal spread
    # gamma ISIs: Shinomoto's LV is 3/(2k+1) in [0.33, 0.75] for shapes 1.5..4, 1 for Poisson
    assert 0.35 < np.nanmedian(stats["isi_lv"]) < 0.7
    # weak shared structure: a unit's 50 ms counts correlate ~0.1-0.2 with the rest of the population
    assert 0.08 < np.median(stats["population_corr"]) < 0.25
    # no trial alignment: the pseudo-trials' population PSTH is flat up to sampling noise
    assert stats["psth_ratio"][0] < 2.0


def test_the_toy_generator_fails_those_checks(tmp_path):
    """The checks can fail: the tuned-on toy generator is Poisson and trial-locked."""
    path = write_nlb_file(tmp_path / "toy.nwb", dataset="mc_maze", n_trials=60, n_heldin=18, n_heldout=6, seed=1)
    stats = R.file_statistics(path)
    assert stats["psth_ratio"][0] > 5.0
    assert np.nanmedian(stats["isi_lv"]) > 0.8


def test_the_file_loads_with_its_privileged_signal_and_oracle(written):
    cfg, path, _ = written
    res = load_nlb(path, cfg.dataset, bin_ms=20)
    k = {"hidden_units": cfg.hidden_channels, "pupil": 1, "context": cfg.n_contexts}[cfg.privileged]
    assert res.data.behavior.shape[2] == k
    assert res.data.heldin.shape[2] == cfg.n_heldin and res.data.heldout.shape[2] == cfg.n_heldout
    assert res.data.true_rates is not None
    # the oracle's expected counts match the spikes' totals per unit (within Poisson-ish noise)
    spikes = np.concatenate([res.data.heldin, res.data.heldout], axis=2)[:, :-res.data.fp_bins]
    expected = res.data.true_rates[:, : spikes.shape[1]]
    ratio = np.nansum(spikes) / expected.sum()
    assert 0.9 < ratio < 1.1


def test_privileged_signal_is_what_it_says(written):
    """pupil lags the arousal drive; context is one-hot; hidden channels are rates of unwritten units."""
    cfg, path, _ = written
    s = R.generate_session(cfg)
    drive = s.truth[0]
    if cfg.privileged == "context":
        assert set(np.unique(s.behavior)) == {0.0, 1.0} and np.all(s.behavior.sum(1) == 1)
        assert np.array_equal(s.behavior, drive[:, -cfg.n_contexts:])
    elif cfg.privileged == "pupil":
        arousal = drive[:, -1].astype(float)
        lag = int(cfg.pupil_lag_s * 1000)
        lagged = np.corrcoef(s.behavior[lag:, 0], arousal[:-lag])[0, 1]
        assert lagged > 0.8 and lagged > np.corrcoef(s.behavior[:, 0], arousal)[0, 1]
    else:
        assert s.behavior.shape[1] == cfg.hidden_channels and len(s.spike_times) == cfg.n_heldin + cfg.n_heldout
        assert 0.5 * cfg.rate_median_hz < np.median(s.behavior) < 3 * cfg.rate_median_hz


def test_neural_settings_cover_three_privileged_kinds():
    kinds = {c.privileged for c in R.SETTINGS.values()}
    assert kinds == {"hidden_units", "pupil", "context"} and len(R.SETTINGS) >= 6


def test_unknown_setting_exits_2(tmp_path, capsys):
    assert R.main([str(tmp_path), "--settings", "nope"]) == 2
    assert "nope" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_layout_is_checked():
    with pytest.raises(ValueError, match="dmfc_rsg"):
        attrs.evolve(R.SETTINGS["hidden-160"], dataset="dmfc_rsg")
