"""Reading sessions from AnnData (``.h5ad``), one file per session, with configurable keys. No torch here.

Every key is a *location* string in one AnnData object:

- ``X``; ``layers/NAME``; ``obsm/NAME`` — arrays with one row per neuron;
- ``obs/COLUMN`` — one value per neuron; ``var/COLUMN`` — one value per column of ``X``;
- ``uns/A/B/...`` — nested entries of ``uns`` (an array, or a scalar such as a subject name).

Recording keys (``activity``, ``frame_times``, ``behavior``, ``behavior_times``)
are read from the separate activity file when ``activity_file`` is set, and
from the session's file otherwise; cell keys (positions, subject, session,
labels) always from the session's file. Rows of the activity file are matched
to the session's neurons by ``obs_names``.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Iterable, Literal

import attrs
import numpy as np

from blend_core.api import DataError, template
from blend_spatial.data import LabelSet, NeuronIdentityData, Session

SUBCLASSES = ("Lamp5", "Pvalb", "Sncg", "Sst", "Vip")


@attrs.frozen(kw_only=True, slots=False)  # a mixin: combined by data source configs
class LayoutConfig:
    """Where each field lives in a session's AnnData; defaults follow method.md §6."""

    activity: str = "obsm/activity"  #: (neurons, frames)
    #: a separate AnnData per session; ``{stem}`` is the session file's stem
    activity_file: str = attrs.field(default="", validator=template("stem"))
    frame_times: str = "uns/frame_times"  #: "" if none
    behavior: tuple[str, ...] = ("uns/behavior/running_speed", "uns/behavior/pupil_size")
    behavior_times: str = ""  #: when behavior is sampled on its own clock: interpolated onto frame_times
    positions: str = "obsm/spatial"  #: micrometres
    subject: str = "obs/subject"
    session: str = "obs/session"  #: "" names a session by its file's stem
    ei_class: str = "obs/ei_class"  #: "" for none
    ei_classes: tuple[str, ...] = ("EC", "IN")
    subclass: str = "obs/subclass"  #: "" for none
    subclass_classes: tuple[str, ...] = SUBCLASSES
    unlabelled: tuple[str, ...] = ("", "nan", "NaN", "NA", "None", "unassigned")  #: label values meaning "no label"


@attrs.frozen(kw_only=True, slots=False)  # a mixin: combined by data source configs
class SplitConfig:
    """Which labelled neurons fit the classifier and which are scored."""

    split: Literal["subject", "session", "fraction"] = "subject"
    test: tuple[str, ...] = ()  #: held-out subjects or sessions; empty: the last one in sorted order
    test_fraction: float = 0.25  #: for split 'fraction': share of labelled neurons scored
    seed: int = 0


@attrs.frozen(kw_only=True)
class AnnDataConfig(LayoutConfig, SplitConfig):
    path: str = "data/*.h5ad"  #: a file, a directory of .h5ad files, or a glob pattern


# ------------------------------------------------------------------ locations

def _describe(adata: Any, head: str) -> str:
    if head == "X":
        return "X"
    keys = list(getattr(adata, head).keys()) if head in ("obsm", "layers", "uns") else list(getattr(adata, head).columns)
    return ", ".join(map(str, keys)) or "nothing"


def read_location(adata: Any, loc: str, origin: str) -> Any:
    """The value at ``loc`` (see the module docstring); DataError naming the key and what is there."""
    parts = loc.split("/")
    head, rest = parts[0], parts[1:]
    heads = ("X", "layers", "obsm", "obs", "var", "uns")
    if head not in heads or (head == "X") != (not rest):
        raise DataError(f"{origin}: bad key {loc!r}; expected X, layers/NAME, obsm/NAME, obs/COLUMN, var/COLUMN or uns/A/B")
    if head == "X":
        return adata.X
    if head == "uns":
        node: Any = adata.uns
        for i, part in enumerate(rest):
            if not hasattr(node, "keys") or part not in node:
                where = "uns" + "".join(f"[{p!r}]" for p in rest[:i])
                has = ", ".join(map(str, node.keys())) if hasattr(node, "keys") else f"a {type(node).__name__}"
                raise DataError(f"{origin}: {where}[{part!r}] not found ({loc}); {where} has: {has or 'nothing'}")
            node = node[part]
        return node
    name = "/".join(rest)
    container = getattr(adata, head)
    present = name in container.columns if head in ("obs", "var") else name in container
    if not present:
        raise DataError(f"{origin}: {head}[{name!r}] not found ({loc}); the file has {head} keys: {_describe(adata, head)}")
    return container[name]


#: the largest dense array made from a sparse one (bytes): a sparse matrix can declare any shape
MAX_DENSE_BYTES = 8 << 30


def _dense(value: Any, loc: str, origin: str) -> np.ndarray:
    if hasattr(value, "toarray"):
        shape = tuple(int(n) for n in value.shape)
        size = float(np.prod(shape, dtype=np.float64)) * np.dtype(value.dtype).itemsize
        if size > MAX_DENSE_BYTES:
            raise DataError(f"{origin}: {loc}: a sparse {shape[0]} x {shape[1]} matrix would take {size / (1 << 30):.3g} GiB "
                            f"dense; blend reads at most {MAX_DENSE_BYTES / (1 << 30):.3g} GiB per array")
        value = value.toarray()
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value)


def _numeric(value: Any, loc: str, origin: str) -> np.ndarray:
    arr = _dense(value, loc, origin)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise DataError(f"{origin}: {loc}: expected numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _strings(value: Any, n: int, loc: str, origin: str, missing: Iterable[str] = ()) -> np.ndarray:
    """Per-neuron strings; a scalar is broadcast; missing values (NaN, None, ``missing``) become ""."""
    import pandas as pd

    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        value = [value] * n
    series = pd.Series(np.asarray(value.to_numpy() if isinstance(value, pd.Series) else _dense(value, loc, origin),
                                  dtype=object))
    if len(series) != n:
        raise DataError(f"{origin}: {loc}: expected {n} values (one per neuron), got {len(series)}")
    out = series.where(series.notna(), "").astype(str).to_numpy()
    out[np.isin(out, list(missing))] = ""
    return out.astype(str)


def _finite(arr: np.ndarray, loc: str, origin: str, names: np.ndarray | None = None) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        detail = ""
        if names is not None and arr.ndim == 2:
            rows = np.flatnonzero(bad.any(axis=1))
            detail = f" in {len(rows)} neuron(s), first {str(names[rows[0]])!r}"
        hint = "interpolate or drop those neurons first" if detail else "interpolate over the gaps first"
        raise DataError(f"{origin}: {loc}: {int(bad.sum())} NaN/infinite value(s){detail}; expected finite values ({hint})")


# ------------------------------------------------------------------ sessions

def read_session(adata: Any, origin: str, layout: LayoutConfig, *, stem: str, keep: bool = False) -> tuple[Session, dict[str, np.ndarray]]:
    """One session and its raw per-neuron labels (by LabelSet key)."""
    n = adata.n_obs
    names = np.asarray(adata.obs_names).astype(str)
    rec, rec_origin = adata, origin
    if layout.activity_file:
        rec_path = Path(origin).parent / layout.activity_file.format(stem=stem)
        rec = _read_h5ad(rec_path, "activity_file")
        rec_origin = str(rec_path)
        missing = set(names.tolist()) - set(rec.obs_names.astype(str).tolist())
        if missing:
            raise DataError(f"{rec_origin}: no rows for {len(missing)} neuron(s) of {origin}, e.g. {sorted(missing)[0]!r}; "
                            "rows are matched by obs_names")
        rec = rec[names]
    activity = _numeric(read_location(rec, layout.activity, rec_origin), layout.activity, rec_origin)
    if activity.ndim != 2 or activity.shape[0] != n:
        raise DataError(f"{rec_origin}: {layout.activity}: expected ({n} neurons, frames), got shape {activity.shape}")
    _finite(activity, layout.activity, rec_origin, names)
    if activity.size and activity.min() == activity.max():  # nothing to predict, nothing to classify by
        raise DataError(f"{rec_origin}: {layout.activity}: every value is {activity.flat[0]:g}; expected recorded "
                        "activity (is data.activity the right key?)")
    n_frames = activity.shape[1]
    frame_times = None
    if layout.frame_times:
        frame_times = _numeric(read_location(rec, layout.frame_times, rec_origin), layout.frame_times, rec_origin).ravel()
        if frame_times.shape != (n_frames,):
            raise DataError(f"{rec_origin}: {layout.frame_times}: expected {n_frames} frame times (one per activity column), "
                            f"got {frame_times.shape[0]}")
        _finite(frame_times, layout.frame_times, rec_origin)
    behavior = None
    if layout.behavior:
        columns = []
        times = None
        if layout.behavior_times:
            if frame_times is None:
                raise DataError(f"{origin}: behavior_times needs frame_times to interpolate onto")
            times = _numeric(read_location(rec, layout.behavior_times, rec_origin), layout.behavior_times, rec_origin).ravel()
            _finite(times, layout.behavior_times, rec_origin)
        for loc in layout.behavior:
            b = _numeric(read_location(rec, loc, rec_origin), loc, rec_origin).ravel()
            _finite(b, loc, rec_origin)
            if times is not None:
                if b.shape != times.shape:
                    raise DataError(f"{rec_origin}: {loc}: expected {times.shape[0]} values like {layout.behavior_times}, got {b.shape[0]}")
                b = np.interp(frame_times, times, b)
            elif b.shape != (n_frames,):
                raise DataError(f"{rec_origin}: {loc}: expected {n_frames} values (one per frame), got {b.shape[0]}; "
                                "set behavior_times if behavior has its own clock")
            columns.append(b)
        behavior = np.stack(columns, axis=1).astype(np.float32)
    positions = _numeric(read_location(adata, layout.positions, origin), layout.positions, origin)
    if positions.ndim != 2 or positions.shape[0] != n:
        raise DataError(f"{origin}: {layout.positions}: expected ({n} neurons, d), got shape {positions.shape}")
    _finite(positions, layout.positions, origin, names)
    subject = _strings(read_location(adata, layout.subject, origin), n, layout.subject, origin)
    if len(set(subject.tolist())) != 1 or subject[0] == "":
        raise DataError(f"{origin}: {layout.subject}: expected one subject per session file, got {sorted(set(subject.tolist()))[:5]}")
    session = stem
    if layout.session:
        values = _strings(read_location(adata, layout.session, origin), n, layout.session, origin)
        if len(set(values.tolist())) != 1 or values[0] == "":
            raise DataError(f"{origin}: {layout.session}: expected one session per file, got {sorted(set(values.tolist()))[:5]}")
        session = str(values[0])
    labels = {}
    for loc, classes, key in ((layout.ei_class, layout.ei_classes, "ei_classes"),
                              (layout.subclass, layout.subclass_classes, "subclass_classes")):
        if not loc:
            continue
        values = _strings(read_location(adata, loc, origin), n, loc, origin, layout.unlabelled)
        unknown = sorted(set(values[values != ""].tolist()) - set(classes))
        if unknown:
            wanted = ", ".join([*classes, *unknown])
            raise DataError(f"{origin}: {loc}: unknown class(es) {', '.join(map(repr, unknown))}; expected one of "
                            f"{', '.join(classes)} (or a missing value); to keep them set data.{key}: [{wanted}], "
                            f"or mark them unlabelled with data.unlabelled")
        labels[loc] = values
    sess = Session(
        name=session, subject=str(subject[0]), activity=activity.astype(np.float32),
        positions=positions.astype(np.float32), behavior=behavior, neuron_names=names,
        origin=origin if not keep else "", adata=adata if keep else None,
    )
    return sess, labels


def _check_hdf5(path: Path) -> None:
    """Refuse links out of the file and impossible declared sizes before anndata reads it whole."""
    import h5py

    from blend_core.api import h5safe

    def fail(obj: str, why: str) -> DataError:
        return DataError(f"{path}: {obj}: {why}")

    try:
        f = h5py.File(path, "r")
    except OSError:
        return  # not HDF5: anndata's own error names the file
    with f:
        h5safe.check_file(f, fail)


def _read_h5ad(path: Path, what: str = "path") -> Any:
    import anndata as ad

    if not path.is_file():
        raise DataError(f"{path}: file not found ({what})")
    _check_hdf5(path)
    try:
        return ad.read_h5ad(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable .h5ad file ({type(exc).__name__}: {exc})") from None


def session_files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.h5ad"))
    elif any(c in path for c in "*?["):
        files = sorted(Path(f) for f in glob.glob(path))
    else:
        files = [p] if p.exists() else []
    if not files:
        raise DataError(f"data.path: no .h5ad files at {path!r} (a file, a directory or a glob pattern)")
    return files


# ------------------------------------------------------------------ assembling

def assemble(
    sessions: list[tuple[Session, dict[str, np.ndarray]]], layout: LayoutConfig, split: SplitConfig,
    *, name: str = "spatial",
) -> NeuronIdentityData:
    """Concatenate sessions, assign label splits, validate."""
    if not sessions:
        raise DataError(f"{name}: no sessions")
    seen: dict[str, str] = {}
    for sess, _ in sessions:
        if sess.name in seen:
            raise DataError(f"{sess.origin or name}: session {sess.name!r} also in {seen[sess.name] or 'another session'}; "
                            "session names must be unique")
        seen[sess.name] = sess.origin
    behavior_names = tuple(loc.rsplit("/", 1)[-1] for loc in layout.behavior)
    label_sets = []
    for loc, classes, short, key in ((layout.ei_class, layout.ei_classes, "/".join(layout.ei_classes), "ei_classes"),
                                     (layout.subclass, layout.subclass_classes, "subclass", "subclass_classes")):
        if loc:
            values = np.concatenate([lab[loc] for _, lab in sessions])
            label_sets.append(LabelSet(name=short, key=loc.split("/", 1)[-1], classes=tuple(classes), values=values,
                                       classes_key=f"data.{key}"))
    only = [s for s, _ in sessions]
    roles = assign_split(only, label_sets, split)
    return NeuronIdentityData(
        sessions=tuple(only), labels=tuple(label_sets), split=roles, behavior_names=behavior_names, name=name,
    ).validate()


def assign_split(sessions: list[Session], labels: list[LabelSet], config: SplitConfig) -> np.ndarray:
    counts = [s.n_neurons for s in sessions]
    if config.split == "fraction":
        if not 0 < config.test_fraction < 1:
            raise DataError(f"data.test_fraction: expected a value in (0, 1), got {config.test_fraction}")
        # stratified by the combination of labels, so that each class lands in both parts
        n = sum(counts)
        rng = np.random.default_rng(config.seed)
        strata = np.array(["|".join(v) for v in zip(*(lab.values for lab in labels))]) if labels else np.zeros(n)
        roles = np.full(n, "train", dtype="<U5")
        for value in np.unique(strata):
            members = rng.permutation(np.flatnonzero(strata == value))
            roles[members[: int(round(config.test_fraction * len(members)))]] = "test"
        return roles
    groups = [s.subject if config.split == "subject" else s.name for s in sessions]
    available = sorted(set(map(str, groups)))
    if len(available) < 2:
        raise DataError(f"data.split: {config.split!r} needs at least two {config.split}s to hold one out; "
                        f"found {available}")
    test = set(config.test) if config.test else {available[-1]}
    unknown = sorted(test - set(available))
    if unknown:
        raise DataError(f"data.test: unknown {config.split}(s) {', '.join(map(repr, unknown))}; "
                        f"the data has: {', '.join(available)}")
    if test >= set(available):
        raise DataError(f"data.test: holds out every {config.split}; nothing is left to fit the classifier")
    return np.repeat(np.where(np.isin(groups, list(test)), "test", "train"), counts).astype("<U5")


@attrs.define
class AnnDataSource:
    """The ``anndata`` data source: one ``.h5ad`` per session."""

    config: AnnDataConfig
    _data: NeuronIdentityData | None = attrs.field(default=None, init=False)

    def load(self) -> NeuronIdentityData:
        if self._data is None:
            sessions = [read_session(_read_h5ad(f), str(f), self.config, stem=f.stem)
                        for f in session_files(self.config.path)]
            self._data = assemble(sessions, self.config, self.config, name=self.config.path)
        return self._data

    def input_files(self) -> list[Path]:
        """The files ``load`` reads (each session's ``.h5ad`` and activity file): their digests go into
        the run's provenance, and ``--resume`` refuses if one changed."""
        files = session_files(self.config.path)
        if self.config.activity_file:
            files += [f.parent / self.config.activity_file.format(stem=f.stem) for f in files]
        return files

    def write_predictions(self, predictions: dict[str, Any], out_dir: Path) -> list[Path]:
        """``blend predict``: the student's embeddings and labels into new ``.h5ad`` files in ``out_dir``."""
        from blend_spatial.output import write_h5ad

        return write_h5ad(self.load(), {"student": predictions}, Path(out_dir))
