"""blend_core.metrics: agreement with nlb_tools (the reference) and unit behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blend_core.metrics import (
    bits_per_spike,
    classification_scores,
    nlb_scores,
    poisson_nll,
    psth_r2,
    velocity_r2,
)

ATOL = 1e-6
N_TRAIN, N_EVAL, T, T_FP, N_IN, N_OUT, N_COND, N_LAT = 60, 50, 20, 5, 11, 4, 5, 3


def _nlb():
    """nlb_tools.evaluation, or skip: it is only a test-time reference."""
    pytest.importorskip("nlb_tools")
    return pytest.importorskip("nlb_tools.evaluation")


def _make_data(seed: int) -> dict:
    """Latent-driven Poisson data: conditions, velocity and PSTHs that mean something."""
    rng = np.random.default_rng(seed)
    t_all = T + T_FP
    time = np.linspace(0, 1, t_all)
    cond_phase = rng.uniform(0, 2 * np.pi, size=(N_COND, N_LAT))
    n_total = N_TRAIN + N_EVAL
    cond = np.arange(n_total) % N_COND
    latents = np.sin(2 * np.pi * time[None, :, None] + cond_phase[cond][:, None, :])
    latents = latents + 0.2 * rng.standard_normal(latents.shape)
    n_neur = N_IN + N_OUT
    weights = rng.normal(0, 0.8, size=(N_LAT, n_neur))
    true_rates = np.exp(latents @ weights - 1.0)  # spikes per bin
    spikes = rng.poisson(true_rates).astype(float)
    pred_rates = true_rates * rng.lognormal(0, 0.3, size=true_rates.shape)
    behavior = latents[:, :T] @ rng.normal(size=(N_LAT, 2))
    behavior = behavior + 0.3 * rng.standard_normal((n_total, T, 2))
    # NaN behaviour at the end of some trials (trial shorter than window)
    for trial in rng.choice(n_total, size=10, replace=False):
        behavior[trial, -rng.integers(1, 4):] = np.nan

    tr, ev = slice(0, N_TRAIN), slice(N_TRAIN, n_total)
    eval_cond = cond[ev]
    eval_cond_idx = np.stack([np.flatnonzero(eval_cond == c) for c in range(N_COND)])
    psth = np.stack([true_rates[ev][eval_cond == c, :T].mean(0) for c in range(N_COND)])
    psth[:, :2] = np.nan  # condition windows do not cover the first/last bins
    psth[:, -2:] = np.nan
    jitter = rng.integers(-2, 3, size=N_EVAL)

    eval_spikes_heldout = spikes[ev, :T, N_IN:].copy()
    nan_mask = rng.random(eval_spikes_heldout.shape) < 0.05
    eval_spikes_heldout[nan_mask] = np.nan
    eval_rates_heldout = pred_rates[ev, :T, N_IN:].copy()
    eval_rates_heldout[nan_mask & (rng.random(nan_mask.shape) < 0.5)] = np.nan  # unobserved
    eval_rates_heldout[0, 0, 0] = 0.0 if not np.isnan(eval_spikes_heldout[0, 0, 0]) else 1.0
    return {
        "train_rates_heldin": pred_rates[tr, :T, :N_IN],
        "train_rates_heldout": pred_rates[tr, :T, N_IN:],
        "eval_rates_heldin": pred_rates[ev, :T, :N_IN],
        "eval_rates_heldout": eval_rates_heldout,
        "eval_rates_heldin_forward": pred_rates[ev, T:, :N_IN],
        "eval_rates_heldout_forward": pred_rates[ev, T:, N_IN:],
        "eval_spikes_heldout": eval_spikes_heldout,
        "eval_spikes_heldin_forward": spikes[ev, T:, :N_IN],
        "eval_spikes_heldout_forward": spikes[ev, T:, N_IN:],
        "train_behavior": behavior[tr],
        "eval_behavior": behavior[ev],
        "eval_cond_idx": eval_cond_idx,
        "psth": psth,
        "jitter": jitter,
        "true_eval_rates_heldout": true_rates[ev, :T, N_IN:],
        "eval_spikes_heldout_clean": spikes[ev, :T, N_IN:],
    }


@pytest.fixture(params=[0, 1, 2])
def data(request) -> dict:
    return _make_data(request.param)


def _copy(d: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


# ------------------------------------------------------------------ vs nlb_tools
def test_bits_per_spike_matches_nlb(data):
    ev = _nlb()
    d = _copy(data)
    ours = bits_per_spike(d["eval_rates_heldout"], d["eval_spikes_heldout"])
    ref = ev.bits_per_spike(d["eval_rates_heldout"].copy(), d["eval_spikes_heldout"].copy())
    assert np.isfinite(ours)
    assert ours == pytest.approx(float(ref), abs=ATOL)
    # without NaNs and with zero rates at observed entries
    rates = d["true_eval_rates_heldout"].copy()
    rates[:3, :, 1] = 0.0
    spikes = d["eval_spikes_heldout_clean"]
    ref = ev.bits_per_spike(rates.copy(), spikes.copy())
    assert bits_per_spike(rates, spikes) == pytest.approx(float(ref), abs=ATOL)


def test_fp_bps_matches_nlb(data):
    ev = _nlb()
    rates = np.dstack([data["eval_rates_heldin_forward"], data["eval_rates_heldout_forward"]])
    spikes = np.dstack([data["eval_spikes_heldin_forward"], data["eval_spikes_heldout_forward"]])
    ref = ev.bits_per_spike(rates.copy(), spikes.copy())
    assert bits_per_spike(rates, spikes) == pytest.approx(float(ref), abs=ATOL)


def test_poisson_nll_matches_nlb(data):
    ev = _nlb()
    rates, spikes = data["eval_rates_heldout"], data["eval_spikes_heldout"]
    ref = ev.neg_log_likelihood(rates.copy(), spikes.copy())
    assert poisson_nll(rates, spikes) == pytest.approx(float(ref), abs=ATOL)


def _all_rates(d: dict, split: str) -> np.ndarray:
    return np.concatenate([d[f"{split}_rates_heldin"], d[f"{split}_rates_heldout"]], axis=-1)


def test_velocity_r2_matches_nlb(data):
    ev = _nlb()
    train_rates, eval_rates = _all_rates(data, "train"), data["eval_rates_heldin"]
    eval_rates = np.concatenate([eval_rates, data["true_eval_rates_heldout"]], axis=-1)
    ours = velocity_r2(train_rates, data["train_behavior"], eval_rates, data["eval_behavior"])
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    ref = ev.fit_and_eval_decoder(
        flat(train_rates), flat(data["train_behavior"]),
        flat(eval_rates), flat(data["eval_behavior"]),
    )
    assert 0.2 < ours < 1.0  # a meaningful decode, not a degenerate one
    assert ours == pytest.approx(float(ref), abs=ATOL)


def test_velocity_r2_decode_masks_match_nlb(data):
    ev = _nlb()
    train_rates = _all_rates(data, "train")
    eval_rates = np.concatenate([data["eval_rates_heldin"], data["true_eval_rates_heldout"]], -1)
    tmask = np.stack([np.arange(N_TRAIN) % 2 == 0, np.arange(N_TRAIN) % 2 == 1], axis=1)
    emask = np.stack([np.arange(N_EVAL) % 2 == 0, np.arange(N_EVAL) % 2 == 1], axis=1)
    ours = velocity_r2(
        train_rates, data["train_behavior"], eval_rates, data["eval_behavior"],
        train_decode_mask=tmask, eval_decode_mask=emask,
    )
    ref = ev.velocity_decoding(
        train_rates, data["train_behavior"], tmask, eval_rates, data["eval_behavior"], emask
    )
    assert ours == pytest.approx(float(ref), abs=ATOL)


@pytest.mark.parametrize("use_jitter", [False, True])
def test_psth_r2_matches_nlb(data, use_jitter):
    ev = _nlb()
    eval_rates = np.concatenate([data["eval_rates_heldin"], data["true_eval_rates_heldout"]], -1)
    psth = data["psth"]
    cond_idx = [np.asarray(i) for i in data["eval_cond_idx"]]
    cond_idx[1] = np.array([], dtype=int)  # an empty condition is skipped
    jitter = data["jitter"] if use_jitter else None
    ours = psth_r2(eval_rates, cond_idx, psth, jitter=jitter)
    ref = ev.eval_psth(psth, eval_rates, cond_idx, jitter=jitter)
    assert ours == pytest.approx(float(ref), abs=ATOL)


def test_nlb_scores_match_nlb_evaluate(data):
    ev = _nlb()
    d = _copy(data)
    target = {
        "mc_maze": {
            k: d[k].copy()
            for k in (
                "eval_spikes_heldout", "train_behavior", "eval_behavior", "psth",
                "eval_cond_idx", "eval_spikes_heldin_forward", "eval_spikes_heldout_forward",
            )
        }
    }
    target["mc_maze"]["eval_jitter"] = d["jitter"].copy()
    user = {
        "mc_maze": {
            k: d[k].copy()
            for k in (
                "train_rates_heldin", "train_rates_heldout", "eval_rates_heldin",
                "eval_rates_heldout", "eval_rates_heldin_forward", "eval_rates_heldout_forward",
            )
        }
    }
    # nlb's evaluate needs eval rates without NaNs for vel/psth; use observed-safe rates
    user["mc_maze"]["eval_rates_heldout"] = d["true_eval_rates_heldout"].copy()
    ref = ev.evaluate(target, user)[0]["mc_maze_split"]
    ours = nlb_scores(
        eval_rates_heldout=d["true_eval_rates_heldout"],
        eval_spikes_heldout=d["eval_spikes_heldout"],
        eval_rates_forward=np.dstack(
            [d["eval_rates_heldin_forward"], d["eval_rates_heldout_forward"]]
        ),
        eval_spikes_forward=np.dstack(
            [d["eval_spikes_heldin_forward"], d["eval_spikes_heldout_forward"]]
        ),
        eval_rates_heldin=d["eval_rates_heldin"],
        train_rates=_all_rates(d, "train"),
        train_behavior=d["train_behavior"],
        eval_behavior=d["eval_behavior"],
        eval_cond_idx=list(d["eval_cond_idx"]),
        psth=d["psth"],
        jitter=d["jitter"],
    )
    assert list(ours) == ["co-bps", "vel R2", "psth R2", "fp-bps"]
    assert set(ours) == set(ref)
    for key in ours:
        assert ours[key] == pytest.approx(float(ref[key]), abs=ATOL), key


# -------------------------------------------------------------------- unit tests
def test_bps_positive_for_true_rates_and_zero_for_null():
    d = _make_data(3)
    spikes = d["eval_spikes_heldout"]
    assert bits_per_spike(d["true_eval_rates_heldout"], spikes) > 0
    null = np.broadcast_to(np.nanmean(spikes, axis=(0, 1), keepdims=True), spikes.shape)
    assert bits_per_spike(null, spikes) == pytest.approx(0.0, abs=1e-12)


def test_bps_known_value():
    # one neuron, two bins: counts (0, 2); null rate 1 for both bins
    rates = np.array([[[0.5], [1.5]]])
    spikes = np.array([[[0.0], [2.0]]])
    nll = lambda r, n: r - n * math.log(r) + math.lgamma(n + 1)  # noqa: E731
    expected = ((nll(1, 0) + nll(1, 2)) - (nll(0.5, 0) + nll(1.5, 2))) / 2 / math.log(2)
    assert bits_per_spike(rates, spikes) == pytest.approx(expected, abs=1e-12)


def test_bps_nan_rate_raises():
    d = _make_data(4)
    rates, spikes = d["true_eval_rates_heldout"].copy(), d["eval_spikes_heldout_clean"]
    rates[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bits_per_spike(rates, spikes)


def test_bps_nan_rate_at_unobserved_entry_is_ignored():
    d = _make_data(4)
    rates, spikes = d["true_eval_rates_heldout"].copy(), d["eval_spikes_heldout_clean"].copy()
    spikes[2, 3, 1] = np.nan
    expected = bits_per_spike(rates, spikes)
    rates[2, 3, 1] = np.nan
    assert bits_per_spike(rates, spikes) == expected


def test_bps_negative_rate_raises():
    d = _make_data(5)
    rates, spikes = d["true_eval_rates_heldout"].copy(), d["eval_spikes_heldout_clean"]
    rates[0, 0, 0] = -0.1
    with pytest.raises(ValueError, match="negative"):
        bits_per_spike(rates, spikes)


def test_bps_zero_rate_clipped_and_inputs_untouched():
    d = _make_data(6)
    rates, spikes = d["true_eval_rates_heldout"].copy(), d["eval_spikes_heldout_clean"]
    rates[:, :, 0] = 0.0
    clipped = rates.copy()
    clipped[:, :, 0] = 1e-9
    score = bits_per_spike(rates, spikes)
    assert np.isfinite(score)
    assert score == bits_per_spike(clipped, spikes)
    assert np.all(rates[:, :, 0] == 0.0)  # the caller's array is not modified


def test_bps_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        bits_per_spike(np.ones((2, 3, 4)), np.ones((2, 3, 5)))


def test_velocity_r2_perfect_linear_decode():
    rng = np.random.default_rng(0)
    train_rates, eval_rates = rng.random((40, 10, 6)), rng.random((20, 10, 6))
    w = rng.normal(size=(6, 2))
    r2 = velocity_r2(train_rates, train_rates @ w, eval_rates, eval_rates @ w)
    assert r2 == pytest.approx(1.0, abs=1e-3)


def test_psth_r2_perfect_prediction():
    d = _make_data(7)
    rates = d["true_eval_rates_heldout"]
    cond_idx = list(d["eval_cond_idx"])
    psth = np.stack([rates[idx].mean(0) for idx in cond_idx])
    assert psth_r2(rates, cond_idx, psth) == pytest.approx(1.0, abs=1e-12)


def test_nlb_scores_optional_keys():
    d = _make_data(8)
    fwd_r = np.dstack([d["eval_rates_heldin_forward"], d["eval_rates_heldout_forward"]])
    fwd_s = np.dstack([d["eval_spikes_heldin_forward"], d["eval_spikes_heldout_forward"]])
    base = dict(
        eval_rates_heldout=d["true_eval_rates_heldout"],
        eval_spikes_heldout=d["eval_spikes_heldout"],
        eval_rates_forward=fwd_r,
        eval_spikes_forward=fwd_s,
    )
    assert list(nlb_scores(**base)) == ["co-bps", "fp-bps"]
    with_psth = nlb_scores(
        **base, eval_rates_heldin=d["eval_rates_heldin"],
        eval_cond_idx=list(d["eval_cond_idx"]), psth=d["psth"],
    )
    assert list(with_psth) == ["co-bps", "psth R2", "fp-bps"]
    with pytest.raises(ValueError, match="eval_rates_heldin"):
        nlb_scores(**base, eval_cond_idx=list(d["eval_cond_idx"]), psth=d["psth"])
    with pytest.raises(ValueError, match="together"):
        nlb_scores(
            **base, eval_rates_heldin=d["eval_rates_heldin"], train_behavior=d["train_behavior"]
        )


def test_classification_scores_tiny_example():
    y_true = ["a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "b", "b", "b", "a", "c"]
    scores = classification_scores(y_true, y_pred, labels=["a", "b", "c", "d"])
    assert set(scores) == {"accuracy", "macro F1", "confusion", "support"}
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert scores["support"] == [2, 2, 2, 0]
    # per-class F1: a = 2*.5*.5/1 = .5, b = 2*(2/3)*1/(5/3) = .8, c = 2*1*.5/1.5 = 2/3, d = 0
    assert scores["macro F1"] == pytest.approx((0.5 + 0.8 + 2 / 3 + 0.0) / 4)
    assert isinstance(scores["confusion"][0][0], int)
