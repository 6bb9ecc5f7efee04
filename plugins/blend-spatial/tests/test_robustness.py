"""The robustness suite's Bugeon-like generator: its stated statistics hold on written files."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from blend_spatial import robustness as R
from blend_spatial.anndata_source import LayoutConfig, SplitConfig, _read_h5ad, assemble, read_session
from blend_spatial.classify import fit_predict
from blend_spatial.features import session_features

SMALL = dict(n_subjects=4, sessions_per_subject=1, neurons_per_session=100, n_frames=600, seed=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("bugeon")
    return R.write_setting("bugeon-like", out, seed=5, **{k: v for k, v in SMALL.items() if k != "seed"})


@pytest.fixture(scope="module")
def sessions(files):
    return [_read_h5ad(p) for p in files]


def _pairwise(a, types, same: bool) -> float:
    c = np.corrcoef(a.obsm["activity"])
    t = np.asarray(types)
    inh = t != "EC"
    mask = (t[:, None] == t[None, :]) if same else (t[:, None] != t[None, :])
    mask &= inh[:, None] & inh[None, :] & ~np.eye(len(t), dtype=bool)
    return float(c[mask].mean())


def test_files_load_through_the_anndata_reader(files):
    layout = LayoutConfig()
    read = [read_session(_read_h5ad(p), str(p), layout, stem=p.stem) for p in files]
    data = assemble(read, layout, SplitConfig(split="subject", test=["SB029"]), name="t")
    assert data.n_neurons == 400 and data.behavior_dim == 2
    assert set(data.subjects[data.split == "test"]) == {"SB029"}


def test_within_type_correlations_exceed_between_type(sessions):
    for a in sessions:
        types = np.where(a.obs["ei_class"] == "EC", "EC", a.obs["subclass"].astype(str))
        assert _pairwise(a, types, True) > _pairwise(a, types, False) + 0.05


def test_burstiness_and_rates_are_type_specific(sessions):
    """Sst fires bursts (many spikes per active frame), Pvalb single spikes at the highest rate;
    Lamp5's slow calcium decay makes its activity the most autocorrelated."""
    nonzero, rate, ac = ({t: [] for t in R.TYPES} for _ in range(3))
    for a in sessions:
        spikes = a.obsm["truth_spikes"].astype(float)
        f = session_features(a.obsm["activity"], a.obsm["spatial"], 65.0)
        types = np.where(a.obs["ei_class"] == "EC", "EC", a.obs["subclass"].astype(str))
        for t in R.TYPES:
            s = spikes[types == t]
            nonzero[t].append(s[s > 0].mean())
            rate[t] += (s > 0).mean(1).tolist()  # share of frames with an event: the event rate
            ac[t] += f[types == t, 3].tolist()
    assert np.mean(nonzero["Sst"]) > np.mean(nonzero["Pvalb"]) + 1.0
    assert np.median(rate["Pvalb"]) > 1.3 * max(np.median(rate[t]) for t in R.TYPES if t != "Pvalb")
    assert np.median(ac["Lamp5"]) > np.median(ac["Pvalb"])


def test_activity_statistics_are_strongly_informative(sessions):
    """A logistic regression on the hand-made statistics names the held-out animal's subclasses well."""
    X = np.concatenate([session_features(a.obsm["activity"], a.obsm["spatial"], 65.0) for a in sessions])
    sub = np.concatenate([a.obs["subclass"].astype(str).to_numpy() for a in sessions])
    subject = np.concatenate([a.obs["subject"].astype(str).to_numpy() for a in sessions])
    test, lab = subject == "SB029", sub != "nan"
    pred, _ = fit_predict(X, sub, ~test & lab, list(R.SUBCLASSES), "logistic")
    acc = np.mean(pred[test & lab] == sub[test & lab])
    assert acc > 0.6  # chance is 0.2


def test_behavior_effect_zero_removes_the_behavior_coupling():
    def run_corr(effect: float) -> dict[str, float]:
        cfg = attrs.evolve(R.BugeonLikeConfig(**SMALL), behavior_effect=effect, n_subjects=1)
        a = R.generate(cfg)[0]
        types = np.where(a.obs["ei_class"] == "EC", "EC", a.obs["subclass"].astype(str))
        run = a.uns["behavior"]["running_speed"]
        c = np.array([np.corrcoef(x, run)[0, 1] for x in a.obsm["activity"]])
        return {t: float(np.mean(c[types == t])) for t in ("Vip", "Sst")}

    on, off = run_corr(1.0), run_corr(0.0)
    assert on["Vip"] - on["Sst"] > 0.2
    assert abs(off["Vip"] - off["Sst"]) < 0.1


def test_unknown_setting_exits_2(tmp_path, capsys):
    assert R.main([str(tmp_path / "x"), "--settings", "nope"]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "x").exists()
