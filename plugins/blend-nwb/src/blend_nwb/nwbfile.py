"""Lazy reading of the parts of an NWB file that blend needs, straight from HDF5.

Only the requested objects are read: the flat ``spike_times`` vector of the
units table with its index, named trial columns, and named behavior series.
A 1 GB file's other acquisitions are never touched. Every problem is raised as
a ``DataError`` naming the file, the object and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np

from blend_core.api import DataError

#: Where behavior series are looked up, in order, when given by bare name.
BEHAVIOR_GROUPS = ("processing/behavior", "acquisition")


@attrs.frozen(kw_only=True, eq=False)
class Units:
    """The units table: spike times as one flat vector with per-unit boundaries."""

    spike_times: np.ndarray  #: all spikes, unit after unit (seconds)
    bounds: np.ndarray  #: (n_units + 1,) offsets into ``spike_times``
    heldout: np.ndarray | None  #: (n_units,) bool, if the file has the column
    obs_intervals: list[np.ndarray] | None  #: per unit (k, 2) seconds, if present

    @property
    def n_units(self) -> int:
        return len(self.bounds) - 1


@attrs.frozen(kw_only=True, eq=False)
class Series:
    """A behavior TimeSeries: samples and their times (seconds)."""

    name: str
    data: np.ndarray  #: (samples, channels)
    times: np.ndarray  #: (samples,)
    rate: float | None  #: sampling rate when the series is regular (starting_time + rate)
    starting_time: float
    dtype: np.dtype


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in ("O", "S"):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values


def _check_values(reader: NWBReader, obj: str, values: np.ndarray, *, allow_nan: bool = False,
                  nonnegative: bool = False) -> None:
    """Refuse infinite (and, unless allowed, NaN or negative) numbers, naming the file and field."""
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        first = values[bad].flat[0]
        allowed = "finite numbers or NaN for gaps" if allow_nan else "finite numbers"
        raise reader.fail(obj, f"{int(bad.sum())} non-finite values (first: {first}); expected {allowed}")
    if nonnegative and values.size and np.nanmin(values) < 0:
        raise reader.fail(obj, f"{int((values < 0).sum())} negative values (min {np.nanmin(values)}); "
                          "expected times >= 0 s on the session clock")


class NWBReader:
    """An open NWB file (HDF5), read lazily. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            reason = str(exc).split("(")[0].strip() or "unreadable"
            raise DataError(
                f"{self.path}: not a readable NWB (HDF5) file ({reason}); truncated or not NWB?"
            ) from None
        root_type = self.h5.attrs.get("neurodata_type", b"")
        root_type = root_type.decode() if isinstance(root_type, bytes) else str(root_type)
        if root_type != "NWBFile":
            self.h5.close()
            raise DataError(f"{self.path}: an HDF5 file but not NWB (root neurodata_type is {root_type!r}, "
                            "expected 'NWBFile')")

    def __enter__(self) -> NWBReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.h5.close()

    def fail(self, obj: str, msg: str) -> DataError:
        return DataError(f"{self.path}: {obj}: {msg}")

    def _read(self, ds: h5py.Dataset, obj: str) -> np.ndarray:
        try:
            return ds[()]
        except (OSError, RuntimeError, KeyError) as exc:
            raise self.fail(obj, f"unreadable data ({exc}); is the file truncated?") from None

    # ------------------------------------------------------------ units

    def units(self, *, need_heldout: bool, need_obs_intervals: bool) -> Units:
        if "units" not in self.h5:
            raise self.fail("units", "no units table; expected /units with 'spike_times'")
        g = self.h5["units"]
        if "spike_times" not in g or "spike_times_index" not in g:
            raise self.fail("units", "expected columns 'spike_times' and 'spike_times_index'")
        times = np.asarray(self._read(g["spike_times"], "units/spike_times"), dtype=np.float64)
        index = np.asarray(self._read(g["spike_times_index"], "units/spike_times_index"), dtype=np.int64)
        bounds = np.concatenate([[0], index])
        if len(index) == 0:
            raise self.fail("units", "the table has no units")
        if bounds[-1] != len(times) or np.any(np.diff(bounds) < 0):
            raise self.fail("units/spike_times_index", "index does not match spike_times")
        _check_values(self, "units/spike_times", times, nonnegative=True)
        heldout = None
        if "heldout" in g:
            heldout = np.asarray(self._read(g["heldout"], "units/heldout")).astype(bool)
        elif need_heldout:
            raise self.fail("units/heldout", "column missing; expected a boolean 'heldout' column "
                            "marking the held-out neurons (NLB layout)")
        obs = None
        if "obs_intervals" in g and "obs_intervals_index" in g:
            flat = np.asarray(self._read(g["obs_intervals"], "units/obs_intervals"), dtype=np.float64)
            oidx = np.concatenate([[0], self._read(g["obs_intervals_index"], "units/obs_intervals_index")])
            if flat.ndim != 2 or flat.shape[1] != 2 or len(oidx) != len(bounds):
                raise self.fail("units/obs_intervals", "expected (k, 2) intervals per unit")
            _check_values(self, "units/obs_intervals", flat, nonnegative=True)
            obs = [flat[oidx[i] : oidx[i + 1]] for i in range(len(oidx) - 1)]
        elif need_obs_intervals:
            raise self.fail("units/obs_intervals", "column missing; expected per-unit observation "
                            "intervals (NLB layout)")
        if heldout is not None and len(heldout) != len(index):
            raise self.fail("units/heldout", f"expected {len(index)} values, got {len(heldout)}")
        return Units(spike_times=times, bounds=bounds, heldout=heldout, obs_intervals=obs)

    # ------------------------------------------------------------ trials

    def trial_columns(self) -> list[str]:
        if "intervals/trials" not in self.h5:
            raise self.fail("intervals/trials", "no trials table")
        g = self.h5["intervals/trials"]
        return [k for k in g if not k.endswith("_index") and k != "id"]

    def n_trials(self) -> int:
        return len(self.trial("start_time"))

    def trial(self, column: str) -> np.ndarray:
        """One trials-table column as a 1-d array (strings decoded)."""
        if "intervals/trials" not in self.h5:
            raise self.fail("intervals/trials", "no trials table; expected /intervals/trials")
        g = self.h5["intervals/trials"]
        if column not in g:
            cols = ", ".join(sorted(self.trial_columns()))
            raise self.fail(f"intervals/trials/{column}", f"column missing; the table has: {cols}")
        if f"{column}_index" in g:
            raise self.fail(f"intervals/trials/{column}", "a ragged column; expected one value per trial")
        values = np.asarray(self._read(g[column], f"intervals/trials/{column}"))
        if values.ndim != 1:
            raise self.fail(f"intervals/trials/{column}", f"expected one value per trial, got shape {values.shape}")
        if values.dtype.kind == "f":  # NaN marks a missing value (e.g. tp of test trials); inf is an error
            _check_values(self, f"intervals/trials/{column}", values, allow_nan=True)
        return _decode(values)

    # ------------------------------------------------------------ behavior

    def find_series(self, name: str) -> str | None:
        """The HDF5 path of a TimeSeries given as a path or a bare name."""
        if "/" in name:
            return name.strip("/") if name.strip("/") in self.h5 else None
        for group in BEHAVIOR_GROUPS:
            if f"{group}/{name}" in self.h5:
                return f"{group}/{name}"
        if "processing" in self.h5:
            for module in self.h5["processing"]:
                if name in self.h5["processing"][module]:
                    return f"processing/{module}/{name}"
        return None

    def series_names(self) -> list[str]:
        names = []
        for group in ("processing", "acquisition"):
            if group not in self.h5:
                continue
            def visit(path: str, obj: Any) -> None:
                if isinstance(obj, h5py.Group) and "data" in obj:
                    names.append(f"{group}/{path}")
            self.h5[group].visititems(visit)
        return names

    def series(self, name: str) -> Series:
        path = self.find_series(name)
        if path is None:
            avail = ", ".join(self.series_names()) or "none"
            raise self.fail(name, f"behavior series not found under {' or '.join(BEHAVIOR_GROUPS)}; "
                            f"series in the file: {avail}")
        g = self.h5[path]
        if not isinstance(g, h5py.Group) or "data" not in g:
            raise self.fail(path, "not a TimeSeries (no 'data')")
        data = self._read(g["data"], f"{path}/data")
        dtype = data.dtype
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 1:
            data = data[:, None]
        rate = None
        start = 0.0
        if "timestamps" in g:
            times = np.asarray(self._read(g["timestamps"], f"{path}/timestamps"), dtype=np.float64)
        elif "starting_time" in g:
            st = g["starting_time"]
            start = float(st[()])
            rate = float(st.attrs["rate"])
            times = start + np.arange(data.shape[0]) / rate
        else:
            raise self.fail(path, "neither 'timestamps' nor 'starting_time' with a rate")
        if len(times) != data.shape[0]:
            raise self.fail(path, f"{len(times)} timestamps for {data.shape[0]} samples")
        _check_values(self, f"{path}/data", data, allow_nan=True)  # NaN samples are gaps, interpolated
        _check_values(self, f"{path}/timestamps", times)
        return Series(name=path.rsplit("/", 1)[-1], data=data, times=times, rate=rate,
                      starting_time=start, dtype=dtype)
