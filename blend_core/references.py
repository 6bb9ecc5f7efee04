"""Reference rows that say whether a model is any good: NLB's smoothing baseline and the oracle.

``smoothing`` follows the Neural Latents Benchmark's simplest baseline: held-in
spikes smoothed with a Gaussian kernel are the held-in rates; a Poisson GLM from
``log(smoothed held-in + 1e-4)`` predicts the held-out neurons. The kernel width
and the GLM's L2 penalty are chosen on the validation trials (held-out Poisson
NLL), the GLMs are fitted on the training trials. NLB's baseline makes no forward
prediction; here a second Poisson GLM predicts every neuron's forward bins from
the log-smoothed held-in rates of the window's last bin plus one intercept per
forward bin, so that ``fp-bps`` has a reference too.

``oracle`` is the data's true rates, when a synthetic source knows them.
Both are scored by the caller with the same metrics as the trained models. No torch here.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from blend_core.data import NeuralData, gaussian_smooth

#: kernel standard deviations tried (ms) and L2 penalties (NLB's per-dataset values span these)
KERNEL_SD_MS = (20.0, 30.0, 50.0, 80.0)
ALPHAS = (1e-3, 1e-2, 1e-1)
#: added before the log of smoothed spikes, as NLB's baseline
LOG_OFFSET = 1e-4
#: at most this many (trial, bin) samples fit a GLM; beyond it a seeded subsample keeps the fit to seconds
MAX_SAMPLES = 10_000
#: the forward-bin GLM has every neuron as an output: fewer samples keep it as cheap
MAX_FORWARD_SAMPLES = 4_000


def fit_poisson_glm(
    x: np.ndarray, y: np.ndarray, alpha: float, *, init: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 1000, tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Independent Poisson GLMs (log link), one per column of ``y``, sharing the design ``x``.

    Minimises ``mean_i(exp(eta) - y * eta) + alpha / 2 * ||W||^2`` per output (intercepts not
    penalised): the objective of scikit-learn's ``PoissonRegressor``. The outputs are
    separable, so one L-BFGS over all of them at once finds each one's optimum. Columns
    are standardised inside (with the penalty rescaled to match), which changes the
    conditioning, not the optimum. ``init`` warm-starts from another fit's ``(W, b)``.
    Returns ``(W, b)`` with ``W`` of shape ``(features, outputs)``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    center, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-8)
    x = (x - center) / scale
    penalty = alpha / scale[:, None] ** 2  # alpha/2 ||W||^2 in the standardised coordinates
    n, d = x.shape
    k = y.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        eta = x @ w + b
        mu = np.exp(np.minimum(eta, 30.0))
        loss = (mu - y * eta).sum() / n + 0.5 * (penalty * w * w).sum()
        resid = (mu - y) / n
        return loss, np.concatenate([(x.T @ resid + penalty * w).ravel(), resid.sum(axis=0)])

    if init is None:
        theta0 = np.concatenate([np.zeros(d * k), np.log(np.maximum(y.mean(axis=0), 1e-6))])
    else:
        w0 = init[0] * scale[:, None]
        theta0 = np.concatenate([w0.ravel(), init[1] + center @ init[0]])
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-8})
    w = res.x[: d * k].reshape(d, k) / scale[:, None]
    return w, res.x[d * k :] - center @ w


def _predict(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(x @ w + b, 30.0))


def _mean_nll(rates: np.ndarray, spikes: np.ndarray) -> float:
    ok = ~np.isnan(spikes)
    r = np.maximum(rates[ok], 1e-9)
    return float(np.mean(r - spikes[ok] * np.log(r)))


def _subsample(n: int, rng: np.random.Generator, cap: int = MAX_SAMPLES) -> np.ndarray:
    return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)


#: the GLMs' matrices are small: extra BLAS threads only contend with training for the cores
#: (held1000 at 20 ms on 2 cores: 1.2 s with one thread, 3.2 s with two, over a minute under load)
@threadpool_limits.wrap(limits=1, user_api="blas")
def smoothing_rates(
    data: NeuralData,
    kernel_sd_ms: tuple[float, ...] = KERNEL_SD_MS,
    alphas: tuple[float, ...] = ALPHAS,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, float]]:
    """NLB's smoothing baseline: rates ``(trials, T + fp, N_in + N_out)`` and the chosen settings."""
    T, fp, n_in, n_out = data.window_bins, data.fp_bins, data.n_heldin, data.n_heldout
    heldin = np.nan_to_num(data.heldin[:, :T].astype(np.float64))
    heldout = data.heldout[:, :T].astype(np.float64)
    train, val = data.indices("train"), data.indices("val")
    if not len(val):
        val = train  # no validation trials: choose on the training trials
    rng = np.random.default_rng(seed)
    observed = ~np.isnan(heldout[train]).any(axis=(1, 2))
    fit_trials = train[observed]
    samples = _subsample(len(fit_trials) * T, rng)

    designs: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def design(sd_ms: float) -> tuple[np.ndarray, np.ndarray]:
        if sd_ms not in designs:
            smooth = gaussian_smooth(heldin, sd_ms / data.bin_ms, axis=1)
            designs[sd_ms] = smooth, np.log(smooth + LOG_OFFSET)
        return designs[sd_ms]

    tried: dict[tuple[float, float], tuple[float, tuple[np.ndarray, np.ndarray]]] = {}

    def fit(sd: float, alpha: float, init: tuple | None) -> tuple[np.ndarray, np.ndarray]:
        logs = design(sd)[1]
        x_fit = logs[fit_trials].reshape(-1, n_in)[samples]
        w, b = fit_poisson_glm(x_fit, heldout[fit_trials].reshape(-1, n_out)[samples], alpha, init=init)
        nll = _mean_nll(_predict(logs[val].reshape(-1, n_in), w, b), heldout[val].reshape(-1, n_out))
        tried[(sd, alpha)] = (nll, (w, b))
        return w, b

    # the kernel width at NLB's middle penalty, then the penalty at that width (6 fits, not 12); each fit
    # warm-starts from the previous one
    alpha = 1e-2 if 1e-2 in alphas else alphas[len(alphas) // 2]
    init = None
    for sd in kernel_sd_ms:
        init = fit(sd, alpha, init)
    sd = min(tried, key=lambda key: tried[key][0])[0]
    for a in alphas:
        if (sd, a) not in tried:
            fit(sd, a, tried[(sd, alpha)][1])
    best_key = min(tried, key=lambda key: tried[key][0])
    best = (tried[best_key][0], best_key, tried[best_key][1])
    (sd, alpha), (w, b) = best[1], best[2]
    smooth, logs = design(sd)
    rates = np.zeros((data.n_trials, T + fp, n_in + n_out))
    rates[:, :T, :n_in] = smooth
    rates[:, :T, n_in:] = _predict(logs.reshape(-1, n_in), w, b).reshape(data.n_trials, T, n_out)
    if fp:
        rates[:, T:] = _forward_rates(data, logs[:, T - 1], alpha, rng)
    return rates, {"kernel_sd_ms": float(sd), "alpha": float(alpha)}


def _forward_rates(data: NeuralData, last: np.ndarray, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Every neuron's forward bins from the last window bin's log-smoothed held-in rates."""
    T, fp = data.window_bins, data.fp_bins
    spikes = np.concatenate([data.heldin[:, T:], data.heldout[:, T:]], axis=2).astype(np.float64)
    n_all = spikes.shape[2]
    fit_trials = data.indices("train")
    fit_trials = fit_trials[~np.isnan(spikes[fit_trials]).any(axis=(1, 2))]
    offset = np.eye(fp)

    def design(trials: np.ndarray) -> np.ndarray:
        return np.concatenate([np.repeat(last[trials], fp, axis=0), np.tile(offset, (len(trials), 1))], axis=1)

    if not len(fit_trials):
        return np.full((data.n_trials, fp, n_all), np.nan)
    samples = _subsample(len(fit_trials) * fp, rng, MAX_FORWARD_SAMPLES)
    w, b = fit_poisson_glm(design(fit_trials)[samples], spikes[fit_trials].reshape(-1, n_all)[samples], alpha)
    return _predict(design(np.arange(data.n_trials)), w, b).reshape(data.n_trials, fp, n_all)
