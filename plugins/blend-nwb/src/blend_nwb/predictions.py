"""Predictions as a small derived NWB file: rates (Hz) and latents per bin on the session's clock.

The file is new (never a copy of the session) and names its source (identifier, path,
sha256). ``processing/blend`` holds, for every predicted array (``rates``, ``latents``):

- ``<name>``: a ``TimeSeries`` over the window bins of every predicted trial, trials in
  time order, one sample per bin with ``timestamps`` = bin start (s, session clock);
- ``<name>_forward``: the same over the forward-prediction bins (when there are any);
- ``neurons``: one row per rate column (``source_unit_id``, ``heldout``), held-in then held-out;
- ``windows``: a ``TimeIntervals`` table, one row per trial: window start/stop (forward bins
  included), ``source_trial`` (row of the source's trials table) and the model's ``split``.

Rates are in Hz (the model predicts spikes per bin; divided by the bin width). Provenance
(blend and blend-nwb versions, the run's config and the checkpoint's sha256; ``blend predict``
passes the run directory, wherever ``--out`` is) is in ``was_generated_by`` and, as JSON, in
``notes``. In NLB mode ``submission-student.h5`` (the leaderboard's layout, as ``blend run``
writes it) is written beside it; in the test phase it holds the desc-test file's trials.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from blend_core.api import DataError, atomic_write

MODULE = "blend"


def _provenance(run_dir: Path | None) -> dict[str, Any]:
    from blend_core.api import __version__ as blend_version
    from blend_nwb import __version__
    from blend_nwb.cache import sha256_file

    out: dict[str, Any] = {"blend": blend_version, "blend-nwb": __version__}
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        import yaml

        out["run_dir"] = str(run_dir.resolve())
        out["config"] = yaml.safe_load((run_dir / "config.yaml").read_text())
        ckpt = run_dir / "checkpoints" / "student.pt"
        if ckpt.is_file():
            out["checkpoint"] = {"path": str(ckpt.resolve()), "sha256": sha256_file(ckpt)}
    return out


def _source_info(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        ident = f["identifier"][()] if "identifier" in f else b""
        start = f["session_start_time"][()] if "session_start_time" in f else b""
    dec = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
    return {"identifier": dec(ident), "session_start_time": dec(start)}


def write_predictions_nwb(source: Any, predictions: dict[str, Any], out_dir: Path,
                          run_dir: Path | None = None) -> list[Path]:
    """Write ``<session>_blend-predictions.nwb`` and ``predictions.npz`` into ``out_dir``."""
    from blend_core.api import write_npz

    res, data = source.result, source.data
    rows = np.asarray(getattr(res, "eval_rows", None)) if getattr(res, "phase", "val") == "test" else np.arange(data.n_trials)
    src = Path(source.files["test"]["path"] if "test" in source.files else source.config.path)
    sha = (source.files.get("test") or source.files.get("train") or source.files.get("session"))["sha256"]
    out = Path(out_dir) / f"{src.stem}_blend-predictions.nwb"
    if out.resolve() == src.resolve():
        raise DataError(f"{out}: refusing to overwrite the input file")
    arrays = {k: np.asarray(v)[rows] for k, v in predictions.items()
              if np.ndim(v) == 3 and len(v) == data.n_trials}
    if "rates" not in arrays:
        raise DataError(f"{src}: no per-trial 'rates' among the predictions ({', '.join(predictions)})")
    if run_dir is None and (Path(out_dir).parent / "config.yaml").is_file():
        run_dir = Path(out_dir).parent  # the default RUN/predictions
    prov = _provenance(run_dir)
    prov["source"] = {"path": str(src.resolve()), "sha256": sha, **_source_info(src)}
    path = atomic_write(out, lambda tmp: _write(tmp, src, source.config.path, arrays, res, data, rows, prov))
    written = [path, *write_npz(predictions, Path(out_dir))]
    if getattr(source, "nlb", None) is not None:  # NLB mode: the leaderboard's file, as `blend run` writes it
        from blend_nwb.evaluation import submission_tree, write_h5

        tree = submission_tree(res.key, predictions["rates"], res.train_rows, res.eval_rows, data.window_bins,
                               data.n_heldin)
        written.append(write_h5(Path(out_dir) / "submission-student.h5", tree))
    return written


def _write(tmp: Path, src: Path, source_path: str, arrays: dict[str, np.ndarray], res: Any, data: Any,
           rows: np.ndarray, prov: dict[str, Any]) -> None:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import DynamicTable

    info = prov["source"]
    try:
        start = dt.datetime.fromisoformat(info["session_start_time"])
    except ValueError:
        raise DataError(f"{src}: session_start_time {info['session_start_time']!r} is not an ISO 8601 time") from None
    bin_s = data.bin_ms / 1000.0
    T, fp = data.window_bins, data.fp_bins
    first = np.asarray(res.first_bins, dtype=np.float64)
    order = np.argsort(first, kind="stable")  # trials in time order
    t0 = first[order] * bin_s
    nwb = NWBFile(
        session_description=f"BLEND student predictions (rates in Hz, latent features) for session "
                            f"{info['identifier']!r} ({src.name})",
        identifier=str(uuid.uuid4()), session_start_time=start,
        notes=json.dumps(prov, default=str), source_script=json.dumps(prov.get("config", {}), default=str),
        source_script_file_name="config.yaml", was_generated_by=[["blend", prov["blend"]],
                                                                  ["blend-nwb", prov["blend-nwb"]]],
        experiment_description=f"derived from {src.name} (sha256 {info['sha256']})",
        subject=_subject(src), keywords=["blend", "model predictions", "firing rates", "latent factors"],
    )
    mod = nwb.create_processing_module(MODULE, "BLEND model predictions: rates (Hz) and latent features")
    neurons = DynamicTable(name="neurons", description="one row per column of 'rates': the source's units, "
                           "held-in then held-out, each in unit-id order")
    ids, heldout = _unit_ids(Path(source_path), data, res)
    neurons.add_column("source_unit_id", "id of the unit in the source file's units table")
    neurons.add_column("heldout", "the unit is held out (predicted from the held-in units, never an input)")
    for u, h in zip(ids, heldout):
        neurons.add_row(source_unit_id=int(u), heldout=bool(h))
    mod.add(neurons)
    windows = TimeIntervals(name="windows", description="one row per predicted trial: its bins, on the session clock")
    windows.add_column("source_trial", "row of the source file's trials table")
    windows.add_column("split", "the model's split of the trial (train, val, test)")
    split = np.asarray(data.split)[rows]
    for i in order:
        windows.add_interval(start_time=float(first[i] * bin_s), stop_time=float((first[i] + T + fp) * bin_s),
                             source_trial=int(res.trial_ids[i]), split=str(split[i]))
    mod.add(windows)
    for name, arr in arrays.items():
        for suffix, sl, n in (("", slice(0, T), T), ("_forward", slice(T, T + fp), fp)):
            if n == 0:
                continue
            values = arr[order, sl].reshape(len(order) * n, arr.shape[2]).astype(np.float32)
            times = (t0[:, None] + (np.arange(n) + (T if suffix else 0))[None, :] * bin_s).ravel()
            desc = (f"{name} over the {'forward-prediction' if suffix else 'window'} bins of each trial "
                    f"(rows of 'windows' in time order, {n} bins of {data.bin_ms:g} ms each); timestamps are bin starts")
            if name == "rates":
                values = values / np.float32(bin_s)
                kw = {"unit": "Hz", "description": desc + "; columns: rows of 'neurons'"}
            else:
                kw = {"unit": "a.u.", "description": desc + "; columns: the student's latent features"}
            steps = np.diff(times)
            if len(times) > 2 and np.allclose(steps, bin_s, rtol=0, atol=1e-9):  # back-to-back trials: regular
                kw.update(starting_time=float(times[0]), rate=1.0 / bin_s)
            else:
                kw.update(timestamps=times)
            mod.add(TimeSeries(name=f"{name}{suffix}", data=H5DataIO(values, compression="gzip"), **kw))
    named = tmp.with_name(tmp.name + ".nwb")  # pynwb wants the extension; renamed onto tmp when complete
    try:
        with NWBHDF5IO(str(named), "w") as io:
            io.write(nwb)
        os.replace(named, tmp)
    finally:
        named.unlink(missing_ok=True)


def _subject(src: Path) -> Any:
    """The session's subject, copied (the predictions are about the same animal)."""
    import h5py
    from pynwb.file import Subject

    fields = ("subject_id", "species", "sex", "age", "description", "genotype", "strain", "weight")
    with h5py.File(src, "r") as f:
        g = f.get("general/subject")
        if g is None:
            return None
        kw = {k: g[k][()] for k in fields if k in g}
    kw = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in kw.items()}
    return Subject(**kw)


def _unit_ids(path: Path, data: Any, res: Any) -> tuple[np.ndarray, np.ndarray]:
    """Unit ids of the rate columns in ``path`` (the session whose units the model predicts):
    held-in then held-out units, by id (NLB mode) or by table row (generic mode)."""
    from blend_nwb.nwbfile import NWBReader

    n_in, n_out = data.n_heldin, data.n_heldout
    with NWBReader(path) as r:
        g = r.h5["units"] if "units" in r.h5 else None
        ids = np.asarray(g["id"][()]) if g is not None and "id" in g else np.arange(n_in + n_out)
        held = np.asarray(g["heldout"][()]).astype(bool) if g is not None and "heldout" in g else None
    generic = getattr(res, "heldout_units", None)
    if generic is not None:
        held = np.asarray(generic, bool)
        order = np.r_[np.flatnonzero(~held), np.flatnonzero(held)]
    elif held is not None and len(held) == len(ids):
        order = np.r_[np.flatnonzero(~held)[np.argsort(ids[~held], kind="stable")],
                      np.flatnonzero(held)[np.argsort(ids[held], kind="stable")]]
    else:
        raise DataError(f"{path}: units: cannot tell held-in from held-out units for the prediction file")
    if len(order) != n_in + n_out:
        raise DataError(f"{path}: units: {len(order)} units, but the model predicts {n_in + n_out}")
    return ids[order], held[order]
