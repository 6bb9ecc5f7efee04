"""Prepared NLB tensors cached on disk, so that a repeated load (a sweep, a seed) takes a second.

An entry is keyed by the sha256 of every input file, every loading setting, the plugin's
version and a digest of the source of the modules that compute the tensors: a changed
file, setting or loader can never be served an old entry. Entries are directories of
``.npy`` files read with ``allow_pickle=False`` (no code can come out of a cache file),
renamed into place when complete. An entry is verified before it is served: every
array's dtype, shape and sha256 against ``meta.json``, and the data contract
(``NeuralData.validate``); an entry that fails (edited, truncated, corrupt) is removed
with a one-line warning and recomputed from the file.

Entries get the permissions of the user's umask (0755 directories and 0644 files under
umask 022, group-writable under 002), so a lab can share one ``BLEND_CACHE_DIR``.

The directory is ``$BLEND_CACHE_DIR/nwb`` (default ``~/.cache/blend/nwb``); set
``BLEND_CACHE_DIR=off`` to disable the cache. Deleting the directory clears it. File
digests are remembered there too (``sha256/``), tied to the file's inode, size, mtime
and ctime, so that a warm load does not re-read a large session just to hash it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from blend_core.api import DataError, NeuralData, atomic_write

log = logging.getLogger("blend.nwb")

CACHE_ENV = "BLEND_CACHE_DIR"
FORMAT = 2  #: bump when the layout of an entry changes (2: per-array dtype, shape and sha256 in meta.json)
_OFF = {"", "0", "off", "none", "false", "no"}
#: a file's digest is remembered only once the file has been left alone this long (s)
MEMO_MIN_AGE_S = 2.0
#: modules whose code decides the cached values
_LOADER_MODULES = ("nlb.py", "binning.py", "nwbfile.py", "cache.py", "truth.py")


def cache_dir() -> Path | None:
    """Where entries live, or None when the cache is switched off."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return Path.home() / ".cache" / "blend" / "nwb"
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser() / "nwb"


def sha256_file(path: str | Path) -> str:
    """The file's sha256 (hex); one line naming the file if it cannot be read.

    With the cache on, the digest is remembered next to the entries together with the
    file's device, inode, size, mtime and ctime (ns); any write to the file changes its
    ctime, so a remembered digest is used only for the very same, unmodified file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    root = cache_dir()
    if root is None:
        return _sha256(path)
    st = path.stat()
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    memo = root / "sha256" / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()}.json"
    try:
        known = json.loads(memo.read_text())
        if known.get("stamp") == stamp and len(known.get("sha256", "")) == 64:
            return known["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    digest = _sha256(path)
    if time.time_ns() - st.st_ctime_ns < MEMO_MIN_AGE_S * 1e9:
        return digest  # changed moments ago: a rewrite within the same clock tick would keep the stamp
    try:
        atomic_write(memo, lambda tmp: tmp.write_text(json.dumps({"path": str(path.resolve()), "stamp": stamp,
                                                                   "sha256": digest})))
    except OSError:
        pass
    return digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    buf = bytearray(1 << 20)  # one reused buffer: no fresh memory per block
    view = memoryview(buf)
    try:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                digest.update(view[:n])
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _loader_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _LOADER_MODULES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def entry_key(file_hashes: dict[str, str], settings: dict[str, Any]) -> str:
    from blend_nwb import __version__

    payload = {"format": FORMAT, "plugin": __version__, "loader": _loader_digest(),
               "files": file_hashes, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------ NLBResult <-> npz

_DATA_FIELDS = ("heldin", "heldout", "split", "behavior", "behavior_names", "decode_behavior", "decode_groups",
                "conditions", "psth", "true_rates")


def _to_arrays(res: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in _DATA_FIELDS:
        value = getattr(res.data, f)
        if value is not None:
            out[f"data.{f}"] = np.asarray(value)
    out["data.fp_bins"] = np.asarray(res.data.fp_bins)
    out["data.bin_ms"] = np.asarray(res.data.bin_ms)
    for k, v in res.target.items():
        v = np.asarray(v) if not (isinstance(v, np.ndarray) and v.dtype == object) else v
        if v.dtype == object:  # ragged index lists: flat values + lengths
            out[f"ragged.{k}.flat"] = np.concatenate([np.asarray(x, np.int64) for x in v]) if len(v) else np.zeros(0, np.int64)
            out[f"ragged.{k}.len"] = np.array([len(x) for x in v], np.int64)
        else:
            out[f"target.{k}"] = v
    for f in ("train_rows", "eval_rows", "trial_ids", "first_bins"):
        out[f"res.{f}"] = np.asarray(getattr(res, f))
    out["res.key"] = np.asarray(res.key)
    out["res.phase"] = np.asarray(res.phase)
    return out


def _from_arrays(arrays: dict[str, np.ndarray], name: str) -> Any:
    from blend_nwb.nlb import NLBResult

    data_kw: dict[str, Any] = {f: arrays.get(f"data.{f}") for f in _DATA_FIELDS}
    data_kw["behavior_names"] = tuple(str(x) for x in data_kw["behavior_names"]) if data_kw["behavior_names"] is not None else ()
    data_kw["split"] = data_kw["split"].astype(str)
    # checked by the caller (_load_entry): digests, then the data contract
    data = NeuralData(fp_bins=int(arrays["data.fp_bins"]), bin_ms=float(arrays["data.bin_ms"]), name=name,
                      **data_kw)
    target: dict[str, Any] = {k[len("target."):]: v for k, v in arrays.items() if k.startswith("target.")}
    for k in {k.split(".")[1] for k in arrays if k.startswith("ragged.")}:
        flat, lens = arrays[f"ragged.{k}.flat"], arrays[f"ragged.{k}.len"]
        parts = np.split(flat, np.cumsum(lens)[:-1]) if len(lens) else []
        obj = np.empty(len(parts), dtype=object)
        for i, p in enumerate(parts):
            obj[i] = p
        target[k] = obj
    return NLBResult(data=data, target=target, key=str(arrays["res.key"]), train_rows=arrays["res.train_rows"],
                     eval_rows=arrays["res.eval_rows"], trial_ids=arrays["res.trial_ids"],
                     first_bins=arrays["res.first_bins"], phase=str(arrays["res.phase"]))


class _BadEntry(Exception):
    """A cache entry that is not what was stored."""


def _array_digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).reshape(-1).view(np.uint8)).hexdigest()


def _describe(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": _array_digest(v)} for k, v in arrays.items()}


def _load_entry(entry: Path, name: str) -> Any:
    """The entry's NLBResult, each array checked against its recorded dtype, shape and digest."""
    meta = json.loads((entry / "meta.json").read_text())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("arrays"), dict):
        raise _BadEntry("meta.json is not this version's")
    arrays = {}
    for k, want in meta["arrays"].items():
        if not isinstance(k, str) or not k or "/" in k or k.startswith(".") or not isinstance(want, dict):
            raise _BadEntry(f"meta.json names an array {str(k)[:60]!r}")  # only files inside the entry are read
        # copy-on-write maps: pages are read when used, and a write lands in memory, never in the entry
        a = np.load(entry / f"{k}.npy", allow_pickle=False, mmap_mode="c")
        if a.dtype.str != want["dtype"] or list(a.shape) != want["shape"]:
            raise _BadEntry(f"{k}.npy is {a.dtype.str} {list(a.shape)}, stored as {want['dtype']} {want['shape']}")
        if _array_digest(a) != want["sha256"]:
            raise _BadEntry(f"{k}.npy does not match its sha256 (changed since it was stored)")
        arrays[k] = a
    res = _from_arrays(arrays, name)
    res.data.validate()  # the data contract (non-finite values, shapes), as when it was computed
    return res


def cached_nlb(file_hashes: dict[str, str], settings: dict[str, Any], name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` (an ``NLBResult``), or the stored entry for these files and settings.

    An entry is a directory of ``.npy`` files plus ``meta.json`` (each array's dtype, shape and
    sha256), built under a temporary name and renamed into place in one step, so a reader sees
    a complete entry or none; a reader serves it only if every array still matches.
    """
    root = cache_dir()
    if root is None:
        return compute()
    entry = root / entry_key(file_hashes, settings)
    if entry.is_dir():
        try:
            res = _load_entry(entry, name)
            log.info("loaded prepared tensors from the cache %s", entry)
            return res
        except Exception as exc:  # noqa: BLE001 - a bad entry is recomputed, never trusted
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("cache entry %s is bad (%s); removed, recomputing it from the file", entry, reason[:200])
            shutil.rmtree(entry, ignore_errors=True)
    res = compute()
    try:
        _store(entry, _to_arrays(res))
    except OSError as exc:  # a full or read-only disk costs speed, not the run
        log.warning("could not write the cache entry %s (%s)", entry, exc)
    return res


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _store(entry: Path, arrays: dict[str, np.ndarray]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a lab's shared cache needs the umask's mode
        for k, v in arrays.items():
            np.save(tmp / f"{k}.npy", v, allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "arrays": _describe(arrays)}))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not entry.is_dir():  # not a concurrent writer's complete entry: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
