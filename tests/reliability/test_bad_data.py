"""Data that breaks the contract is refused when loaded, before a run directory exists:
one line naming the data set and the field."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from blend_core.errors import DataError
from blend_core.synthetic import SyntheticConfig, generate


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticConfig(n_trials=40, n_heldin=6, n_heldout=3, window_bins=8, fp_bins=2, n_conditions=2))


def _with(array: np.ndarray, index, value) -> np.ndarray:
    out = array.copy()
    out[index] = value
    return out


CASES = [
    ("inf spikes", lambda d: {"heldin": _with(d.heldin, (0, 0, 0), np.inf)}, "heldin: infinite spike counts"),
    ("negative spikes", lambda d: {"heldout": _with(d.heldout, (0, 0, 0), -1)}, "heldout: spike counts must be non-negative"),
    ("no held-out neurons", lambda d: {"heldout": d.heldout[:, :, :0]},
     "heldout: no neurons (co-bps needs held-out neurons)"),
    ("no val trials", lambda d: {"split": np.where(d.split == "val", "train", d.split)}, "split: no 'val' trials"),
    ("nan behavior", lambda d: {"behavior": _with(d.behavior, (int(np.flatnonzero(d.split == "train")[0]), 0, 0), np.nan)},
     "behavior: NaN or infinite values in train/val trials"),
    ("inf behavior in test", lambda d: {"behavior": _with(d.behavior, (int(np.flatnonzero(d.split == "test")[0]), 0, 0), np.inf)},
     "behavior: infinite values in test trials"),
    ("inf decode target", lambda d: {"decode_behavior": _with(d.decode_behavior, (0, 0, 0), -np.inf)},
     "decode_behavior: infinite values"),
    ("no held-out spikes in test", lambda d: {"heldout": _with(d.heldout, d.split == "test", 0.0)},
     "heldout: no spikes in the test trials; bits per spike (co-bps) is undefined"),
    ("constant decode target", lambda d: {"decode_behavior": _with(d.decode_behavior, (slice(None), slice(None), 1), 0.25)},
     "decode_behavior: channel 1 is constant (0.25) in the train trials; vel R2 would be meaningless"),
    ("negative bin", lambda d: {"bin_ms": -5.0}, "bin_ms: expected a finite number > 0, got -5.0"),
    ("nan bin", lambda d: {"bin_ms": float("nan")}, "bin_ms: expected a finite number > 0, got nan"),
]


@pytest.mark.parametrize("name, change, message", CASES, ids=[c[0] for c in CASES])
def test_bad_arrays_are_one_line(data, name, change, message):
    with pytest.raises(DataError) as info:
        attrs.evolve(data, **change(data)).validate()
    assert str(info.value) == f"synthetic: {message}"


def test_the_unchanged_data_is_valid(data):
    assert data.validate() is data


@pytest.mark.parametrize("override, message", [
    ("data.n_trials=100000000", "data.n_trials: 100000000 trials x 16 bins x 16 neurons is 2.56e+10 values per array, "
                                "more than the synthetic generator's 2e+08 (use fewer trials, bins or neurons)"),
    ("data.n_heldin=10000000", "data.n_trials: 48 trials x 16 bins x 10000004 neurons is 7.68e+09 values per array, "
                               "more than the synthetic generator's 2e+08 (use fewer trials, bins or neurons)"),
])
def test_absurd_synthetic_sizes_are_refused_before_drawing(tmp_path, tiny_config_file, cli, override, message):
    """Sizes are checked as the config is read (``blend validate`` too), not after a MemoryError (issue 19)."""
    out = tmp_path / "run"
    code, _, err = cli("run", tiny_config_file, "--out", out, "--set", override)
    assert code == 2 and err.startswith("error: ") and err.endswith(f": {message}\n") and err.count("\n") == 1, err
    assert not out.exists()
