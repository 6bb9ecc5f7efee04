"""The data contract of the neuron-identity task. No torch here.

A dataset is a list of recording sessions. Each session has its neurons'
activity over frames, the behavior on the same frames, the neurons' positions,
and per neuron: subject, labels (EC/IN class, inhibitory subclass; ``""`` where
unknown) and the split role of the label (``train``: fits the classifier;
``test``: scored). Every neuron's activity is used to learn its embedding,
whatever its split and whether or not it has a label.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from blend_core.api import DataError

LABEL_SPLITS = ("train", "test")


@attrs.frozen(kw_only=True, eq=False)
class Session:
    """One recording: ``n`` neurons imaged over ``F`` frames."""

    name: str
    subject: str
    activity: np.ndarray  #: (n, F) float32, e.g. dF/F or deconvolved activity
    positions: np.ndarray  #: (n, d) float, micrometres
    behavior: np.ndarray | None  #: (F, K) float32 on the same frames, or None
    neuron_names: np.ndarray  #: (n,) str, the file's obs_names
    origin: str  #: the file it was read from ("" when built in memory)
    adata: Any = None  #: the AnnData itself when the session was built in memory (no file)

    @property
    def n_neurons(self) -> int:
        return self.activity.shape[0]

    @property
    def n_frames(self) -> int:
        return self.activity.shape[1]


@attrs.frozen(kw_only=True, eq=False)
class LabelSet:
    """One classification target: a name, its classes and a label per neuron ("" = none)."""

    name: str  #: as reported in metric names, e.g. "EC/IN" or "subclass"
    key: str  #: the obs column it was read from
    classes: tuple[str, ...]
    values: np.ndarray  #: (N,) str over all neurons of all sessions
    classes_key: str = ""  #: the config key that lists ``classes`` (named in errors), e.g. "data.subclass_classes"

    def labelled(self) -> np.ndarray:
        return self.values != ""


@attrs.frozen(kw_only=True, eq=False)
class NeuronIdentityData:
    """All sessions, with per-neuron arrays concatenated over sessions in order."""

    task: ClassVar[str] = "neuron_identity"

    sessions: tuple[Session, ...]
    labels: tuple[LabelSet, ...]
    split: np.ndarray  #: (N,) in LABEL_SPLITS: which labels fit the classifier and which are scored
    behavior_names: tuple[str, ...] = ()
    name: str = "spatial"

    @property
    def n_neurons(self) -> int:
        return sum(s.n_neurons for s in self.sessions)

    @property
    def behavior_dim(self) -> int:
        return len(self.behavior_names)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each session's neurons in the concatenated order, plus the total."""
        return np.concatenate([[0], np.cumsum([s.n_neurons for s in self.sessions])]).astype(np.int64)

    @property
    def session_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.sessions)), [s.n_neurons for s in self.sessions])

    @property
    def subjects(self) -> np.ndarray:
        return np.repeat([s.subject for s in self.sessions], [s.n_neurons for s in self.sessions])

    def validate(self) -> NeuronIdentityData:
        """Check shapes, finiteness and that each split holds every class; raise DataError."""
        if not self.sessions:
            raise DataError(f"{self.name}: no sessions")
        n_total = self.n_neurons
        for s in self.sessions:
            where = s.origin or s.name

            def fail(msg: str) -> None:
                raise DataError(f"{where}: {msg}")

            if s.activity.ndim != 2 or s.n_frames < 2:
                fail(f"activity: expected a (neurons, frames) array, got shape {s.activity.shape}")
            if s.positions.shape[0] != s.n_neurons or s.positions.ndim != 2:
                fail(f"positions: expected ({s.n_neurons}, d), got {s.positions.shape}")
            if s.behavior is not None and (s.behavior.ndim != 2 or s.behavior.shape != (s.n_frames, self.behavior_dim)):
                fail(f"behavior: expected ({s.n_frames} frames, {self.behavior_dim}), got {s.behavior.shape}")
        if self.split.shape != (n_total,):
            raise DataError(f"{self.name}: split: expected ({n_total},), got {self.split.shape}")
        for lab in self.labels:
            if lab.values.shape != (n_total,):
                raise DataError(f"{self.name}: labels {lab.key!r}: expected ({n_total},), got {lab.values.shape}")
            where = lab.classes_key or "the data source's class list"
            if len(lab.classes) < 2:  # a classifier of one class scores nothing (and fails after training)
                raise DataError(
                    f"{self.name}: {where}: [{', '.join(lab.classes)}] leaves one class of obs[{lab.key!r}]; "
                    "classifying needs at least two (list two or more, or leave this label set out by setting "
                    "its location key to \"\")"
                )
            for part in LABEL_SPLITS:
                present = set(lab.values[(self.split == part) & lab.labelled()].tolist())
                empty = [c for c in lab.classes if c not in present]
                if empty:
                    kept = [c for c in lab.classes if c not in empty]
                    drop = f", or drop the class: {where}: [{', '.join(kept)}]" if len(kept) >= 2 else ""
                    raise DataError(
                        f"{self.name}: split leaves class(es) {', '.join(map(repr, empty))} of obs[{lab.key!r}] "
                        f"with no labelled neuron in '{part}'; choose another held-out subject/session (data.test)"
                        f"{drop}"
                    )
        return self
