"""The prepared-tensor cache: same result as a fresh load, keyed by content and settings, never trusted blindly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from blend_nwb.cache import cache_dir, sha256_file
from blend_nwb.nlb import load_nlb
from blend_nwb.source import NWBConfig, NWBSource


def _same(a, b):
    for f in ("heldin", "heldout", "split", "behavior", "decode_behavior", "decode_groups", "conditions", "psth"):
        x, y = getattr(a.data, f), getattr(b.data, f)
        assert (x is None) == (y is None), f
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=f)
            assert x.dtype == y.dtype, f
    assert (a.data.fp_bins, a.data.bin_ms, a.data.name, a.data.behavior_names) == \
        (b.data.fp_bins, b.data.bin_ms, b.data.name, b.data.behavior_names)
    assert set(a.target) == set(b.target) and a.key == b.key and a.phase == b.phase
    for k, v in a.target.items():
        if np.asarray(v).dtype == object:
            assert len(v) == len(b.target[k]) and all(np.array_equal(p, q) for p, q in zip(v, b.target[k]))
        else:
            np.testing.assert_array_equal(v, b.target[k], err_msg=k)
    for f in ("train_rows", "eval_rows", "trial_ids", "first_bins"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def _entries(root):
    return len([p for p in (root / "nwb").iterdir() if p.name != "sha256"])


def _load(path, dataset, **kw):
    src = NWBSource(NWBConfig(path=str(path), dataset=dataset, **kw))
    src.load()
    return src.result


@pytest.mark.parametrize("dataset", ["mc_maze", "dmfc_rsg"])
def test_warm_equals_cold_equals_uncached(nlb_files, tmp_path, monkeypatch, dataset):
    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path))
    cold = _load(nlb_files[dataset], dataset)
    entries = [p for p in (tmp_path / "nwb").iterdir() if p.name != "sha256"]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    warm = _load(nlb_files[dataset], dataset)
    fresh = load_nlb(nlb_files[dataset], dataset)
    _same(cold, fresh)
    _same(warm, fresh)


def test_key_follows_content_and_settings(nlb_files, tmp_path, monkeypatch):
    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path / "c"))
    path = tmp_path / "s.nwb"
    shutil.copyfile(nlb_files["mc_maze"], path)
    _load(path, "mc_maze")
    _load(path, "mc_maze", bin_ms=20)
    _load(path, "mc_maze", seed=1)
    assert _entries(tmp_path / "c") == 3
    import h5py

    with h5py.File(path, "a") as f:  # same name, new content: a new entry, the new values
        st = f["units/spike_times"]
        st[0] = st[0] + 0.0005
    changed = _load(path, "mc_maze")
    assert _entries(tmp_path / "c") == 4
    _same(changed, load_nlb(path, "mc_maze"))


def test_bad_entry_is_recomputed(nlb_files, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path))
    _load(nlb_files["mc_maze"], "mc_maze")
    (entry,) = [p for p in (tmp_path / "nwb").iterdir() if p.name != "sha256"]
    for bad in (b"garbage", None):
        target = entry / "data.heldin.npy"
        if bad is None:  # a pickled object array: refused (allow_pickle=False), never unpickled
            np.save(target, np.array([object()], dtype=object), allow_pickle=True)
        else:
            target.write_bytes(bad)
        res = _load(nlb_files["mc_maze"], "mc_maze")
        _same(res, load_nlb(nlb_files["mc_maze"], "mc_maze"))
        assert "is bad" in caplog.text
        assert target.stat().st_size > 1000  # replaced by a good entry


def _entry(root):
    (entry,) = [p for p in (root / "nwb").iterdir() if p.name != "sha256"]
    return entry


def test_edited_entry_is_evicted(nlb_files, tmp_path, monkeypatch, caplog):
    """An entry whose arrays changed after they were stored (counts + 3) is never served (issue 19)."""
    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path))
    fresh = load_nlb(nlb_files["mc_maze"], "mc_maze")
    _load(nlb_files["mc_maze"], "mc_maze")
    counts = np.load(_entry(tmp_path) / "data.heldin.npy", mmap_mode="r+")
    counts += 3
    counts.flush()
    del counts
    caplog.clear()
    _same(_load(nlb_files["mc_maze"], "mc_maze"), fresh)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "data.heldin.npy does not match its sha256" in warnings[0], warnings
    caplog.clear()
    _same(_load(nlb_files["mc_maze"], "mc_maze"), fresh)  # the recomputed entry is good again
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_entry_with_non_finite_values_is_evicted(nlb_files, tmp_path, monkeypatch, caplog):
    """Even an entry whose digests were rewritten to match is checked against the data contract."""
    import json

    from blend_nwb import cache

    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path))
    fresh = load_nlb(nlb_files["mc_maze"], "mc_maze")
    _load(nlb_files["mc_maze"], "mc_maze")
    entry = _entry(tmp_path)
    behavior = np.load(entry / "data.behavior.npy")
    behavior[:] = np.inf
    np.save(entry / "data.behavior.npy", behavior)
    meta = json.loads((entry / "meta.json").read_text())
    meta["arrays"]["data.behavior"]["sha256"] = cache._array_digest(behavior)
    (entry / "meta.json").write_text(json.dumps(meta))
    _same(_load(nlb_files["mc_maze"], "mc_maze"), fresh)
    assert "behavior: NaN or infinite values" in caplog.text
    assert np.isfinite(np.load(_entry(tmp_path) / "data.behavior.npy")).all()


@pytest.mark.parametrize("umask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664)])
def test_entries_follow_the_umask(nlb_files, tmp_path, monkeypatch, umask, dir_mode, file_mode):
    """A lab-shared BLEND_CACHE_DIR: entries are readable (and with umask 002 writable) by the group."""
    import os

    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path))
    old = os.umask(umask)
    try:
        _load(nlb_files["mc_maze"], "mc_maze")
    finally:
        os.umask(old)
    entry = _entry(tmp_path)
    assert entry.stat().st_mode & 0o777 == dir_mode
    assert {p.stat().st_mode & 0o777 for p in entry.iterdir()} == {file_mode}


def test_cache_off_and_default_location(nlb_files, tmp_path, monkeypatch):
    monkeypatch.setenv("BLEND_CACHE_DIR", "off")
    assert cache_dir() is None
    _load(nlb_files["mc_maze"], "mc_maze")
    monkeypatch.delenv("BLEND_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "blend" / "nwb"


def test_sha256_file(tmp_path):
    import hashlib

    p = tmp_path / "x.bin"
    p.write_bytes(b"abc" * 5000000)
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()


def test_remembered_digest_follows_the_file(tmp_path, monkeypatch):
    """A remembered sha256 is used only while the file is unmodified (same inode, size, mtime, ctime)."""
    import hashlib
    import os

    import time

    from blend_nwb import cache

    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setattr(cache, "MEMO_MIN_AGE_S", 0.05)
    p = tmp_path / "x.bin"
    p.write_bytes(b"one")
    sha256_file(p)
    assert not (tmp_path / "c" / "nwb" / "sha256").exists()  # too fresh to remember
    time.sleep(0.1)
    assert sha256_file(p) == hashlib.sha256(b"one").hexdigest()
    assert len(list((tmp_path / "c" / "nwb" / "sha256").glob("*.json"))) == 1
    st = p.stat()
    with open(p, "r+b") as fh:  # same size, mtime restored: the ctime still changes
        fh.write(b"two")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sha256_file(p) == hashlib.sha256(b"two").hexdigest()


def test_meta_cannot_point_outside_the_entry(nlb_files, tmp_path, monkeypatch, caplog):
    import json

    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path / "c"))
    _load(nlb_files["mc_maze"], "mc_maze")
    entry = _entry(tmp_path / "c")
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros(3))
    meta = json.loads((entry / "meta.json").read_text())
    meta["arrays"]["../../outside"] = {"dtype": "<f8", "shape": [3], "sha256": ""}
    (entry / "meta.json").write_text(json.dumps(meta))
    _same(_load(nlb_files["mc_maze"], "mc_maze"), load_nlb(nlb_files["mc_maze"], "mc_maze"))
    assert "meta.json names an array '../../outside'" in caplog.text
    assert outside.is_file()
