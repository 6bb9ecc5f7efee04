"""What a run hands to plugins: the result types of the plugin contract (``blend_core.hookspecs``).

A leaf: the types named in the fields are imported only for type checkers, so the
contract and its results sit on the ground floor and import nothing of blend at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np

    from blend_core.config import Config
    from blend_core.model import BlendModel
    from blend_core.task import Task


@attrs.define(kw_only=True)
class RunResult:
    """Everything a run produced; handed to ``blend_run_finished`` hooks.

    ``source`` is the data source that loaded ``data``, so that a plugin can reach
    its own files (e.g. to write benchmark submissions) without global state.
    """

    config: Config
    out_dir: Path
    source: Any
    data: Any
    task: Task
    models: dict[str, BlendModel]
    metrics: dict[str, dict[str, Any]]
    predictions: dict[str, dict[str, np.ndarray]]
    #: each role's and reference row's scores on the validation split carved from training
    #: (``blend_core.selection``): ``metrics.json["val"]``, the only scores selection reads
    val_metrics: dict[str, dict[str, Any]] = attrs.Factory(dict)
