"""Reading HDF5 files someone else wrote, without leaving the file or the machine's memory.

Shared by the data plugins (NWB, .h5ad) through ``blend_core.api.h5safe``; needs h5py,
which every HDF5-reading plugin brings.

Two things a file can declare make a plain ``f[path][()]`` unsafe:

- *Links out of the file.* An HDF5 external link (or a dataset whose data lives in an
  external raw file, or a virtual dataset) makes h5py read another file on the host, which
  the file's digest (and so the cache key and the run's provenance) does not cover. They
  are refused, naming the object and where it points; soft links inside the file are
  followed, and one to nothing, or to a group where data is expected, is refused too.
- *Sizes.* A dataset's shape is a declaration: a 6 MB file can declare a 2 GiB column
  (never written, or compressed zeros) or 8 TiB of spike times. The declared size is
  checked before anything is read: at most ``MAX_ARRAY_BYTES`` per array, and at most
  ``MAX_COMPRESSION`` times the bytes actually stored for it (more than any HDF5
  compression filter achieves on real data), arrays under ``SMALL_BYTES`` exempt.
"""

from __future__ import annotations

from typing import Callable

import h5py
import numpy as np

from blend_core.errors import DataError

#: the largest array blend reads from one HDF5 dataset (bytes, as declared)
MAX_ARRAY_BYTES = 8 << 30
#: declared bytes per stored byte beyond which a dataset is refused (gzip's ceiling is about 1000)
MAX_COMPRESSION = 1100
#: arrays this small are read whatever their storage says
SMALL_BYTES = 64 << 20
_MAX_HOPS = 32

Fail = Callable[[str, str], DataError]


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.3g} GiB"


def resolve(f: h5py.File, path: str, fail: Fail, _hops: int = 0) -> h5py.Group | h5py.Dataset | None:
    """The object at ``path``, following only links inside the file; None when nothing is there.

    Raises (``fail(path, why)``) for an external link, a soft link to nothing, and link chains
    that do not end.
    """
    if _hops > _MAX_HOPS:
        raise fail(path, f"more than {_MAX_HOPS} links in a row (a link cycle?)")
    node: h5py.Group | h5py.Dataset = f["/"]
    parts = [p for p in path.split("/") if p]
    for depth, part in enumerate(parts):
        here = "/".join(parts[: depth + 1])
        if not isinstance(node, h5py.Group):
            return None
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise fail(here, f"an HDF5 external link to {link.filename}:{link.path}; blend reads only data "
                       "stored in the file itself (copy it in)")
        if isinstance(link, h5py.SoftLink):
            target = link.path if link.path.startswith("/") else f"{node.name.rstrip('/')}/{link.path}"
            found = resolve(f, target, fail, _hops + 1)
            if found is None:
                raise fail(here, f"a link to {target}, which does not exist in the file")
            node = found
        else:
            try:
                node = node[part]
            except (KeyError, OSError, RuntimeError) as exc:
                raise fail(here, f"unreadable object ({exc}); is the file truncated?") from None
    return node


def check_dataset(ds: h5py.Dataset, obj: str, fail: Fail) -> None:
    """Refuse data stored outside the file and declared sizes that cannot be real, before reading."""
    if ds.is_virtual:
        raise fail(obj, "a virtual dataset (its data lives in other files); blend reads only data stored in the file")
    if ds.external:
        raise fail(obj, f"data stored in external file(s) {ds.external[0][0]!r}; blend reads only data stored "
                   "in the file")
    declared = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize) if ds.shape is not None else 0
    if declared > MAX_ARRAY_BYTES:
        raise fail(obj, f"declares shape {ds.shape} of {ds.dtype} ({_gib(declared)}); blend reads at most "
                   f"{_gib(MAX_ARRAY_BYTES)} per array")
    if declared > SMALL_BYTES:
        stored = ds.id.get_storage_size()
        if declared > MAX_COMPRESSION * stored:
            raise fail(obj, f"declares shape {ds.shape} of {ds.dtype} ({_gib(declared)}) but stores only "
                       f"{stored} bytes; a size no compression explains (a corrupt or hostile file?)")


def dataset(f: h5py.File, path: str, fail: Fail, *, kinds: str | None = None, what: str = "numbers") -> h5py.Dataset | None:
    """The checked dataset at ``path`` (None when absent); ``kinds``: allowed numpy dtype kinds."""
    obj = resolve(f, path, fail)
    if obj is None:
        return None
    if not isinstance(obj, h5py.Dataset):
        raise fail(path, "a group; expected a dataset")
    check_dataset(obj, path, fail)
    if kinds is not None and obj.dtype.kind not in kinds:
        raise fail(path, f"expected {what}, got {dtype_name(obj.dtype)}")
    return obj


def read(ds: h5py.Dataset, obj: str, fail: Fail) -> np.ndarray:
    """The whole (checked) dataset as an array; a read error is one line naming the object."""
    try:
        return np.asarray(ds[()])
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise fail(obj, f"unreadable data ({exc}); is the file truncated?") from None


def dtype_name(dtype: np.dtype) -> str:
    """How a message names a dtype: strings, compound records, or the dtype."""
    if dtype.kind in "OSU":
        return "strings"
    if dtype.kind == "V":
        return "compound records"
    return f"dtype {dtype}"


def check_file(f: h5py.File, fail: Fail) -> None:
    """Check every object of a file before a library reads it whole (e.g. ``anndata.read_h5ad``).

    Walks every link without following external ones: an external link anywhere, data stored
    outside the file, or a declared size that cannot be real is refused naming the object.
    """
    def walk(group: h5py.Group) -> None:
        for name in group:
            path = f"{group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise fail(path, f"an HDF5 external link to {link.filename}:{link.path}; blend reads only data "
                           "stored in the file itself (copy it in)")
            if isinstance(link, h5py.SoftLink):
                resolve(f, path, fail)  # a dangling or endless link is refused; its target is walked where it lives
                continue
            obj = group[name]
            if isinstance(obj, h5py.Dataset):
                check_dataset(obj, path, fail)
            elif isinstance(obj, h5py.Group):
                walk(obj)

    walk(f["/"])
