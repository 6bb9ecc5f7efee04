"""Reference rows: NLB's smoothing baseline against independent fits, and the oracle."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from blend_core.data import gaussian_smooth
from blend_core.neural_task import MaskedModelingConfig, NeuralTask, score_rates
from blend_core.references import LOG_OFFSET, fit_poisson_glm, smoothing_rates
from blend_core.synthetic import SyntheticConfig, generate

SMALL = SyntheticConfig(n_trials=120, n_heldin=10, n_heldout=4, window_bins=24, fp_bins=4, n_conditions=4)


def _sklearn_glm(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One scikit-learn PoissonRegressor per output, fitted to convergence (Newton)."""
    from sklearn.linear_model import PoissonRegressor

    fits = [PoissonRegressor(alpha=alpha, tol=1e-12, max_iter=1000, solver="newton-cholesky").fit(x, y[:, j])
            for j in range(y.shape[1])]
    return np.stack([f.coef_ for f in fits], axis=1), np.array([f.intercept_ for f in fits])


@pytest.mark.parametrize("alpha", [1e-3, 1e-1])
def test_glm_matches_sklearn(alpha):
    data = generate(SMALL)
    train = data.indices("train")
    x = np.log(gaussian_smooth(data.heldin[train, :24], 6.0) + LOG_OFFSET).reshape(-1, 10)
    y = data.heldout[train, :24].reshape(-1, 4).astype(np.float64)
    w, b = fit_poisson_glm(x, y, alpha)
    w_ref, b_ref = _sklearn_glm(x, y, alpha)
    rates, rates_ref = np.exp(x @ w + b), np.exp(x @ w_ref + b_ref)
    np.testing.assert_allclose(rates, rates_ref, rtol=2e-3)
    np.testing.assert_allclose(w, w_ref, atol=2e-3)


def test_glm_warm_start_reaches_same_optimum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) - 5.0  # far from centred, as log-smoothed rates are
    y = rng.poisson(np.exp(0.3 * (x + 5.0) @ np.array([[1.0], [-0.5], [0.2]]) - 1.0)).astype(float)
    cold = fit_poisson_glm(x, y, 1e-2)
    warm = fit_poisson_glm(x, y, 1e-2, init=(cold[0] + 0.3, cold[1] - 0.5))
    np.testing.assert_allclose(warm[0], cold[0], atol=1e-4)
    np.testing.assert_allclose(warm[1], cold[1], atol=1e-4)


def test_smoothing_rates_are_nlb_smoothing_plus_glm():
    """Held-in rates are the smoothed spikes; held-out rates an independently fitted GLM's."""
    data = generate(SMALL)
    rates, chosen = smoothing_rates(data, kernel_sd_ms=(20.0, 40.0), alphas=(1e-2,))
    T = data.window_bins
    smooth = gaussian_smooth(data.heldin[:, :T], chosen["kernel_sd_ms"] / data.bin_ms)
    np.testing.assert_allclose(rates[:, :T, :10], smooth, rtol=1e-12)
    train = data.indices("train")
    logs = np.log(smooth + LOG_OFFSET)
    w, b = _sklearn_glm(logs[train].reshape(-1, 10), data.heldout[train, :T].reshape(-1, 4), chosen["alpha"])
    expected = np.exp(logs.reshape(-1, 10) @ w + b).reshape(-1, T, 4)
    np.testing.assert_allclose(rates[:, :T, 10:], expected, rtol=5e-3)
    assert rates.shape == (data.n_trials, T + 4, 14) and np.isfinite(rates).all() and (rates >= 0).all()


def test_kernel_width_chosen_on_validation_trials():
    """Among the widths offered, the one with the lowest held-out NLL on val trials wins."""
    data = generate(SMALL)
    val = data.indices("val")
    nll = {}
    for sd in (5.0, 60.0):
        rates, _ = smoothing_rates(data, kernel_sd_ms=(sd,), alphas=(1e-2,))
        r, n = rates[val, :24, 10:], data.heldout[val, :24]
        nll[sd] = float(np.sum(r - n * np.log(r)))
    _, chosen = smoothing_rates(data, kernel_sd_ms=(5.0, 60.0), alphas=(1e-2,))
    assert chosen["kernel_sd_ms"] == min(nll, key=nll.get)


def test_task_references_rows():
    data = generate(SMALL)
    task = NeuralTask(MaskedModelingConfig(), data, torch.device("cpu"))
    rows = task.references()
    assert set(rows) == {"smoothing", "oracle"}
    assert rows["oracle"] == score_rates(data, data.true_rates)
    assert set(rows["smoothing"]) == set(rows["oracle"]) == {"co-bps", "vel R2", "psth R2", "fp-bps"}
    assert rows["smoothing"]["co-bps"] < rows["oracle"]["co-bps"]
    no_truth = attrs.evolve(data, true_rates=None)
    assert set(NeuralTask(MaskedModelingConfig(), no_truth, torch.device("cpu")).references()) == {"smoothing"}


def test_references_fit_once_per_dataset(monkeypatch):
    """``--seeds K`` builds K tasks on one loaded dataset: the smoothing GLMs must not be refitted K times."""
    import blend_core.references as references

    calls = []
    real = references.smoothing_rates
    monkeypatch.setattr(references, "smoothing_rates", lambda data: calls.append(data) or real(data))
    data = generate(SMALL)
    rows = [NeuralTask(MaskedModelingConfig(), data, torch.device("cpu")).references() for _ in range(3)]
    assert len(calls) == 1 and rows[0] == rows[1] == rows[2]
    rows[0]["smoothing"]["co-bps"] = 99.0  # a caller changing its rows changes nobody else's
    assert NeuralTask(MaskedModelingConfig(), data, torch.device("cpu")).references() == rows[1]
    NeuralTask(MaskedModelingConfig(), generate(attrs.evolve(SMALL, seed=SMALL.seed + 1)), torch.device("cpu")).references()
    assert len(calls) == 2  # another dataset is fitted anew


def test_reference_glms_run_on_one_blas_thread(monkeypatch):
    """Extra BLAS threads only contend with training for the cores (docs/recipes.md: 2x slower on 2 cores)."""
    from threadpoolctl import threadpool_info

    import blend_core.references as references

    seen, real = [], references.fit_poisson_glm

    def spy(*args, **kwargs):
        seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return real(*args, **kwargs)

    monkeypatch.setattr(references, "fit_poisson_glm", spy)
    references.smoothing_rates(generate(SMALL), kernel_sd_ms=(20.0,), alphas=(1e-2,))
    assert seen and all(threads == {1} for threads in seen)  # numpy and scipy both: one thread


@pytest.mark.parametrize("span", [2, 3, 7])
def test_masked_bins_come_in_runs_of_mask_span(span):
    """Any ``task.mask_span`` works (3 and up once crashed in max_pool1d) and masks runs of ``span`` bins."""
    data = generate(SMALL)
    task = NeuralTask(MaskedModelingConfig(mask_ratio=0.2, mask_span=span), data, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    mask = task._bin_mask(64, generator)
    starts = torch.rand(64, task.window, generator=generator.set_state(state)) < 0.2 / span
    assert mask.shape == (64, task.window)
    for t in range(task.window):
        assert torch.equal(mask[:, t], starts[:, max(0, t - span + 1): t + 1].any(dim=1))
    assert mask.any()
