"""The public API of blend: everything a plugin author imports, from one module.

Plugins import from here (``from blend_core.api import hookimpl, ModelDims, ...``;
``from blend_core import ...`` gives the same names). Every other module of
``blend_core`` is internal and may change between versions; the names below follow
the hook API's versioning promise (``docs/plugins.md``).
"""

from __future__ import annotations

from blend_core import __version__
from blend_core.build import RunResult
from blend_core.contracts import ContractError, check_output
from blend_core.data import SPLITS, NeuralData, gaussian_smooth
from blend_core.errors import BlendError, ConfigError, DataError, PluginError
from blend_core.hookspecs import HOOK_API_VERSION, Subparsers, hookimpl
from blend_core.io import atomic_write, write_json, write_text, write_yaml
from blend_core.metrics import (
    bits_per_spike,
    classification_scores,
    nlb_scores,
    poisson_nll,
    psth_r2,
    velocity_r2,
)
from blend_core.model import BlendModel, FeatureDims, Inputs, ModelDims, ModelOutput
from blend_core.plugins import load_plugins
from blend_core.predict import write_npz
from blend_core.registry import Component, Register, Registry
from blend_core.task import DataSource, Task
from blend_core.testing import (
    BackboneCheckError,
    backbone_cases,
    check_backbone,
    check_task,
    installed_plugin,
    plugin_registry,
    run_blend,
)

__all__ = [
    "__version__",
    # hooks and registration
    "HOOK_API_VERSION", "hookimpl", "Register", "Registry", "Component", "Subparsers", "load_plugins",
    # contracts
    "ModelDims", "ModelOutput", "FeatureDims", "Inputs", "BlendModel", "NeuralData", "SPLITS",
    "Task", "DataSource", "RunResult",
    # errors
    "BlendError", "ConfigError", "DataError", "PluginError", "ContractError",
    # conformance kit and testing helpers
    "check_backbone", "check_task", "check_output", "backbone_cases", "BackboneCheckError",
    "installed_plugin", "plugin_registry", "run_blend",
    # helpers plugins share with the core
    "atomic_write", "write_json", "write_text", "write_yaml", "write_npz", "gaussian_smooth",
    "bits_per_spike", "poisson_nll", "velocity_r2", "psth_r2", "nlb_scores", "classification_scores",
]
