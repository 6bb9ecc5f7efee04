"""True rates of a session written by ``blend_nwb.synthetic`` (the ``oracle`` reference row).

The writer keeps a 1 kHz latent drive and, per unit, a log base rate and a loading;
the spikes of millisecond ``m`` were drawn with mean
``min(exp(log_rate + drive[m] @ loading) / 1000, 0.5)`` inside the trial. Summing
that mean over a bin's milliseconds gives the expected count the model should
predict. Files without these fields (every real NLB file) have no oracle.
"""

from __future__ import annotations

import numpy as np

from blend_nwb.nwbfile import NWBReader

DRIVE = "processing/synthetic_truth/latent_drive/data"
LOG_RATE = "units/truth_log_rate"
LOADING = "units/truth_loading"


def read_truth(r: NWBReader) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(drive (ms, channels), log_rate (units,), loading (units, channels)), or None."""
    if not all(r.has(key) for key in (DRIVE, LOG_RATE, LOADING)):
        return None
    drive = r.read(DRIVE, kinds="fiu").astype(np.float64)
    log_rate = r.read(LOG_RATE, kinds="fiu", ndim=1).astype(np.float64)
    loading = r.read(LOADING, kinds="fiu").astype(np.float64)
    if loading.size % max(len(log_rate), 1):
        raise r.fail(LOADING, f"expected one row per unit ({len(log_rate)}), got shape {loading.shape}")
    loading = loading.reshape(len(log_rate), -1)
    if drive.ndim != 2 or loading.shape[1] != drive.shape[1]:
        raise r.fail(DRIVE, f"expected (ms, {loading.shape[1]}) drive channels, got shape {drive.shape}")
    return drive, log_rate, loading


def expected_counts(truth: tuple[np.ndarray, np.ndarray, np.ndarray], units: np.ndarray, start_s: np.ndarray,
                    stop_s: np.ndarray, first_bins: np.ndarray, n_bins: int, bin_ms: int,
                    chunk: int = 128) -> np.ndarray:
    """Expected spike counts (windows, n_bins, len(units)) of the windows starting at ``first_bins``.

    A spike drawn in millisecond ``m`` lies inside it, so it falls in bin ``m // bin_ms``
    of the session's grid; only the trial's own milliseconds (as the writer drew them) count.
    """
    drive, log_rate, loading = truth
    log_rate, loading = log_rate[units], loading[units]
    n_ms = n_bins * bin_ms
    out = np.zeros((len(first_bins), n_bins, len(units)), dtype=np.float32)
    lo = np.ceil(np.asarray(start_s, dtype=np.float64) * 1000).astype(np.int64)
    hi = np.floor(np.asarray(stop_s, dtype=np.float64) * 1000).astype(np.int64)
    for a in range(0, len(first_bins), chunk):
        b = min(a + chunk, len(first_bins))
        ms = np.asarray(first_bins[a:b], dtype=np.int64)[:, None] * bin_ms + np.arange(n_ms)[None, :]
        inside = (ms >= lo[a:b, None]) & (ms < hi[a:b, None]) & (ms >= 0) & (ms < len(drive))
        d = drive[np.clip(ms, 0, len(drive) - 1)]  # (w, n_ms, channels)
        rate = np.minimum(np.exp(log_rate + d @ loading.T) / 1000.0, 0.5) * inside[..., None]
        out[a:b] = rate.reshape(b - a, n_bins, bin_ms, len(units)).sum(axis=2)
    return out
