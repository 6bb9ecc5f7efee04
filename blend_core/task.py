"""The task contract: the part of training that depends on the kind of data.

The trainer (``blend_core.training``) is shared by every task and role. A task
holds its data on the training device and answers four questions: which
batches, what the model sees, what the task loss is, and how a model scores.
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
