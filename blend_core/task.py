"""The task contract: the part of training that depends on the kind of data.

The trainer (``blend_core.training``) is shared by every task and role. A task
holds its data on the training device and answers four questions: which
batches, what the model sees, what the task loss is, and how a model scores.

Both protocols are checked when a component is built (``blend_core.build``):
a factory that returns an object lacking a member fails naming the component.

Optional task members, read with ``getattr``:

- ``refused_losses: Mapping[str, str]``: distillation losses that mean nothing
  for this task, each with the reason; a config using one is refused before
  training (``blend_core.contracts``).
- ``references() -> dict[str, dict]``: reference rows scored beside the roles.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import torch

from blend_core.model import BlendModel, Inputs, ModelDims, ModelOutput


@runtime_checkable
class Task(Protocol):
    #: Shapes for the backbone (before behavior is fused in) and the behavior width.
    dims: ModelDims
    behavior_dim: int

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None) -> Iterator[Any]:
        """Batches of ``split``: shuffled with ``generator``, in order when it is None."""

    def inputs(self, batch: Any, generator: torch.Generator | None) -> Inputs:
        """The (masked) model inputs for a batch; teacher and student get the same object."""

    def loss(self, output: ModelOutput, batch: Any, inputs: Inputs) -> torch.Tensor:
        """The scalar task loss ``L_task`` (the backbone's own ``output.losses`` are added by the trainer)."""

    def evaluate(self, model: BlendModel, predictions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Score a trained model; keys are the metric names reported.

        ``predictions`` is this model's ``predict`` output when the caller has it,
        so that inference runs once per model; compute it when None.
        """

    def predict(self, model: BlendModel) -> dict[str, Any]:
        """Predictions for every sample (no behavior needed for a student), as numpy arrays."""


@runtime_checkable
class DataSource(Protocol):
    """What a data-source factory returns.

    ``load()`` returns the data: a validated ``NeuralData`` for the ``neural`` task, or
    another task's data object whose class attribute ``task`` names its task. A source
    may also define ``write_predictions(predictions, out_dir) -> list[Path]`` for
    ``blend predict`` (default: one ``predictions.npz`` with every predicted array); one
    that also names a ``run_dir`` parameter is given the trained run's directory (for
    provenance), wherever ``out_dir`` is. A source that reads files should define
    ``input_files() -> list[Path]`` (called after ``load``): their sha256 go into the
    run's ``provenance.json``, and ``--resume`` refuses to continue if one changed.
    """

    def load(self) -> Any:
        """Read, check and return the data; raise ``DataError`` naming the file and field."""


def prediction_writer(source: Any) -> Any:
    """A source's optional ``write_predictions(predictions, out_dir) -> list[Path]``, or None."""
    writer = getattr(source, "write_predictions", None)
    return writer if callable(writer) else None
