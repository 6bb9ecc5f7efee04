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
from blend_core.api import h5safe

#: Where behavior series are looked up, in order, when given by bare name.
BEHAVIOR_GROUPS = ("processing/behavior", "acquisition")
#: Latest time (s on the session clock) accepted for spikes, trials, intervals and samples (about 116 days):
#: beyond it millisecond indices stop being exact, and no recording session is that long.
MAX_TIME_S = 1e7
NUMBERS = "fiub"  #: numpy dtype kinds of numeric data (bool included)


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
                  nonnegative: bool = False, time: bool = False) -> None:
    """Refuse infinite (and, unless allowed, NaN or negative) numbers, naming the file and field.

    ``time``: values are times on the session clock, at most ``MAX_TIME_S``.
    """
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        first = values[bad].flat[0]
        allowed = "finite numbers or NaN for gaps" if allow_nan else "finite numbers"
        raise reader.fail(obj, f"{int(bad.sum())} non-finite values (first: {first}); expected {allowed}")
    if nonnegative and values.size and np.nanmin(values) < 0:
        raise reader.fail(obj, f"{int((values < 0).sum())} negative values (min {np.nanmin(values)}); "
                          "expected times >= 0 s on the session clock")
    if time and values.size and np.nanmax(values) > MAX_TIME_S:
        raise reader.fail(obj, f"{int((values > MAX_TIME_S).sum())} values beyond {MAX_TIME_S:.0e} s (max "
                          f"{np.nanmax(values):.6g}); expected times in seconds on the session clock")


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

    def get(self, path: str) -> h5py.Group | h5py.Dataset | None:
        """The object at ``path`` (links followed only inside the file), or None."""
        return h5safe.resolve(self.h5, path, self.fail)

    def has(self, path: str) -> bool:
        return self.get(path) is not None

    def read(self, path: str, *, kinds: str | None = NUMBERS, what: str = "numbers", ndim: int | None = None,
             required: str | None = None) -> np.ndarray | None:
        """The dataset at ``path`` read whole after its size, storage and dtype are checked.

        Absent: None, or (with ``required``, the expectation to name) one line.
        """
        ds = h5safe.dataset(self.h5, path, self.fail, kinds=kinds, what=what)
        if ds is None:
            if required is not None:
                raise self.fail(path, f"missing; expected {required}")
            return None
        if ndim is not None and ds.ndim != ndim:
            raise self.fail(path, f"expected a {ndim}-d array of {what}, got shape {ds.shape}")
        return h5safe.read(ds, path, self.fail)

    def group(self, path: str) -> h5py.Group | None:
        obj = self.get(path)
        if obj is not None and not isinstance(obj, h5py.Group):
            raise self.fail(path, "a dataset; expected a group")
        return obj

    def boolean(self, path: str, n: int, what: str) -> np.ndarray:
        """A column of one boolean per row (True/False, or 0/1 numbers), ``n`` rows."""
        values = self.read(path, kinds="biuf", what=f"booleans (True/False) {what}", ndim=1)
        if values.dtype.kind != "b" and not np.isin(values, (0, 1)).all():
            raise self.fail(path, f"expected booleans (True/False or 0/1) {what}, got other values "
                            f"(e.g. {values[~np.isin(values, (0, 1))][0]})")
        if len(values) != n:
            raise self.fail(path, f"expected {n} values (one per unit), got {len(values)}")
        return values.astype(bool)

    def unit_ids(self, n: int) -> np.ndarray:
        ids = self.read("units/id", kinds="iu", what="integer ids", ndim=1)
        if ids is None:
            return np.arange(n)
        if len(ids) != n:
            raise self.fail("units/id", f"expected {n} ids (one per unit), got {len(ids)}")
        return ids

    # ------------------------------------------------------------ units

    def units(self, *, need_heldout: bool, need_obs_intervals: bool) -> Units:
        if self.group("units") is None:
            raise self.fail("units", "no units table; expected /units with 'spike_times'")
        if not (self.has("units/spike_times") and self.has("units/spike_times_index")):
            raise self.fail("units", "expected columns 'spike_times' and 'spike_times_index'")
        times = self.read("units/spike_times", kinds="fiu", what="spike times in seconds", ndim=1).astype(np.float64)
        index = self.read("units/spike_times_index", kinds="iu", what="integer offsets", ndim=1).astype(np.int64)
        bounds = np.concatenate([[0], index])
        if len(index) == 0:
            raise self.fail("units", "the table has no units")
        if bounds[-1] != len(times) or np.any(np.diff(bounds) < 0):
            raise self.fail("units/spike_times_index", "index does not match spike_times")
        if len(times) == 0:
            raise self.fail("units/spike_times", "no spikes in any unit; expected a recording")
        _check_values(self, "units/spike_times", times, nonnegative=True, time=True)
        heldout = None
        if self.has("units/heldout"):
            heldout = self.boolean("units/heldout", len(index), "marking the held-out units")
        elif need_heldout:
            raise self.fail("units/heldout", "column missing; expected a boolean 'heldout' column "
                            "marking the held-out neurons (NLB layout)")
        obs = None
        if self.has("units/obs_intervals") and self.has("units/obs_intervals_index"):
            flat = self.read("units/obs_intervals", kinds="fiu", what="times in seconds").astype(np.float64)
            oidx = np.concatenate([[0], self.read("units/obs_intervals_index", kinds="iu", what="integer offsets",
                                                  ndim=1)])
            if flat.ndim != 2 or flat.shape[1] != 2 or len(oidx) != len(bounds) or oidx[-1] != len(flat) \
                    or np.any(np.diff(oidx) < 0):
                raise self.fail("units/obs_intervals", "expected (k, 2) intervals per unit")
            _check_values(self, "units/obs_intervals", flat, nonnegative=True, time=True)
            inverted = flat[:, 1] < flat[:, 0]
            if inverted.any():
                i = int(np.flatnonzero(inverted)[0])
                raise self.fail("units/obs_intervals", f"{int(inverted.sum())} intervals end before they start "
                                f"(first: [{flat[i, 0]}, {flat[i, 1]}]); expected [start, stop] with start <= stop")
            obs = [flat[oidx[i] : oidx[i + 1]] for i in range(len(oidx) - 1)]
        elif need_obs_intervals:
            raise self.fail("units/obs_intervals", "column missing; expected per-unit observation "
                            "intervals (NLB layout)")
        return Units(spike_times=times, bounds=bounds, heldout=heldout, obs_intervals=obs)

    # ------------------------------------------------------------ trials

    def trial_columns(self) -> list[str]:
        g = self.group("intervals/trials")
        if g is None:
            raise self.fail("intervals/trials", "no trials table")
        return [k for k in g if not k.endswith("_index") and k != "id"]

    def n_trials(self) -> int:
        return len(self.trial("start_time"))

    def trial(self, column: str, *, numeric: bool = False) -> np.ndarray:
        """One trials-table column as a 1-d array (strings decoded); ``numeric``: numbers required."""
        if self.group("intervals/trials") is None:
            raise self.fail("intervals/trials", "no trials table; expected /intervals/trials")
        obj = f"intervals/trials/{column}"
        if not self.has(obj):
            cols = ", ".join(sorted(self.trial_columns()))
            raise self.fail(obj, f"column missing; the table has: {cols}")
        if self.has(f"{obj}_index"):
            raise self.fail(obj, "a ragged column; expected one value per trial")
        values = self.read(obj, kinds=NUMBERS if numeric else None, what="numbers (one per trial)")
        if values.ndim != 1:
            raise self.fail(obj, f"expected one value per trial, got shape {values.shape}")
        if values.dtype.kind == "f":  # NaN marks a missing value (e.g. tp of test trials); inf is an error
            _check_values(self, obj, values, allow_nan=True)
        return _decode(values)

    def trial_times(self) -> tuple[np.ndarray, np.ndarray]:
        """``start_time`` and ``stop_time`` of every trial: finite, on the session clock, start <= stop."""
        start = self.trial("start_time", numeric=True).astype(np.float64)
        stop = self.trial("stop_time", numeric=True).astype(np.float64)
        for name, values in (("start_time", start), ("stop_time", stop)):
            _check_values(self, f"intervals/trials/{name}", values, nonnegative=True, time=True)
        if len(start) != len(stop):
            raise self.fail("intervals/trials/stop_time", f"expected {len(start)} values like start_time, got {len(stop)}")
        if len(start) == 0:
            raise self.fail("intervals/trials", "the table has no trials")
        reversed_ = stop < start
        if reversed_.any():
            i = int(np.flatnonzero(reversed_)[0])
            raise self.fail("intervals/trials", f"{int(reversed_.sum())} trials end before they start (first: row {i}, "
                            f"start_time {start[i]} > stop_time {stop[i]}); expected start_time <= stop_time")
        return start, stop

    # ------------------------------------------------------------ behavior

    def find_series(self, name: str) -> str | None:
        """The HDF5 path of a TimeSeries given as a path or a bare name."""
        if "/" in name:
            return name.strip("/") if self.has(name.strip("/")) else None
        for group in BEHAVIOR_GROUPS:
            if self.has(f"{group}/{name}"):
                return f"{group}/{name}"
        processing = self.group("processing")
        if processing is not None:
            for module in processing:
                if self.has(f"processing/{module}/{name}"):
                    return f"processing/{module}/{name}"
        return None

    def series_names(self) -> list[str]:
        names = []
        for group in ("processing", "acquisition"):
            g = self.group(group)
            if g is None:
                continue
            def visit(path: str, obj: Any) -> None:
                if isinstance(obj, h5py.Group) and "data" in obj:
                    names.append(f"{group}/{path}")
            g.visititems(visit)
        return names

    def series(self, name: str) -> Series:
        path = self.find_series(name)
        if path is None:
            avail = ", ".join(self.series_names()) or "none"
            raise self.fail(name, f"behavior series not found under {' or '.join(BEHAVIOR_GROUPS)}; "
                            f"series in the file: {avail}")
        g = self.get(path)
        if not isinstance(g, h5py.Group) or not self.has(f"{path}/data"):
            raise self.fail(path, "not a TimeSeries (no 'data')")
        data = self.read(f"{path}/data", kinds="fiu", what="numbers (samples x channels)")
        dtype = data.dtype
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[0] == 0:
            raise self.fail(f"{path}/data", f"expected (samples, channels), got shape {data.shape}")
        rate = None
        start = 0.0
        if self.has(f"{path}/timestamps"):
            times = self.read(f"{path}/timestamps", kinds="fiu", what="times in seconds", ndim=1).astype(np.float64)
        elif self.has(f"{path}/starting_time"):
            st = self.read(f"{path}/starting_time", kinds="fiu", what="a time in seconds")
            if st.size != 1:
                raise self.fail(f"{path}/starting_time", f"expected one number, got shape {st.shape}")
            start = float(st.reshape(-1)[0])
            rate = self.get(f"{path}/starting_time").attrs.get("rate")
            if rate is None:
                raise self.fail(f"{path}/starting_time", "no 'rate' attribute; expected the sampling rate in Hz "
                                "(or 'timestamps')")
            try:
                rate = float(np.asarray(rate).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                raise self.fail(f"{path}/starting_time", f"rate: expected a number in Hz, got {rate!r:.60}") from None
            if not (np.isfinite(rate) and rate > 0 and np.isfinite(start)):
                raise self.fail(f"{path}/starting_time", f"expected a finite start and a rate > 0 Hz, got "
                                f"{start} s at {rate} Hz")
            times = start + np.arange(data.shape[0]) / rate
        else:
            raise self.fail(path, "neither 'timestamps' nor 'starting_time' with a rate")
        if len(times) != data.shape[0]:
            raise self.fail(path, f"{len(times)} timestamps for {data.shape[0]} samples")
        _check_values(self, f"{path}/data", data, allow_nan=True)  # NaN samples are gaps, interpolated
        _check_values(self, f"{path}/timestamps", times, time=True)
        for c in range(data.shape[1]):  # behavior that carries nothing: the teacher learns nothing, R2 is meaningless
            col = data[:, c]
            finite = col[~np.isnan(col)]
            which = f"channel {c}: " if data.shape[1] > 1 else ""
            if finite.size == 0:
                raise self.fail(f"{path}/data", f"{which}NaN only; expected measured behavior")
            if finite.min() == finite.max():
                raise self.fail(f"{path}/data", f"{which}constant ({finite[0]:g}); behavior that never changes "
                                "carries no information (and would make vel R2 meaningless)")
        return Series(name=path.rsplit("/", 1)[-1], data=data, times=times, rate=rate,
                      starting_time=start, dtype=dtype)
