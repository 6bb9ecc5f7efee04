"""The public API of blend: everything a plugin author imports, from one module.

Plugins import from here (``from blend_core.api import hookimpl, ModelDims, ...``;
``from blend_core import ...`` gives the same names). Every other module of
``blend_core`` is internal and may change between versions; the names below follow
the hook API's versioning promise (``docs/plugins.md``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "__version__": "blend_core",
    # hooks and registration
    "HOOK_API_VERSION": "blend_core.hookspecs",
    "hookimpl": "blend_core.hookspecs",
    "Register": "blend_core.registry",
    "Registry": "blend_core.registry",
    "Component": "blend_core.registry",
    "Subparsers": "blend_core.hookspecs",
    "load_plugins": "blend_core.plugins",
    # contracts
    "ModelDims": "blend_core.model",
    "ModelOutput": "blend_core.model",
    "FeatureDims": "blend_core.model",
    "Inputs": "blend_core.model",
    "BlendModel": "blend_core.model",
    "NeuralData": "blend_core.data",
    "SPLITS": "blend_core.data",
    "Task": "blend_core.task",
    "DataSource": "blend_core.task",
    "RunResult": "blend_core.results",
    "fused_dims": "blend_core.model",
    # configs, as blend reads them (for tests of example configs)
    "read_yaml": "blend_core.config",
    "apply_overrides": "blend_core.config",
    "build_config": "blend_core.config",
    "load_config": "blend_core.config",
    # trained runs in Python
    "load_run": "blend_core.loaded",
    "LoadedRun": "blend_core.loaded",
    "LoadedSeeds": "blend_core.loaded",
    # errors
    "BlendError": "blend_core.errors",
    "ConfigError": "blend_core.errors",
    "DataError": "blend_core.errors",
    "PluginError": "blend_core.errors",
    "ContractError": "blend_core.contracts",
    # validators for a plugin's config classes (attrs' own ge/gt/le/lt/in_/optional for the rest)
    "FieldError": "blend_core.validators",
    "in_range": "blend_core.validators",
    "positive_finite": "blend_core.validators",
    "non_negative_finite": "blend_core.validators",
    "each": "blend_core.validators",
    "template": "blend_core.validators",
    "POSITIVE_INT": "blend_core.validators",
    "NON_NEGATIVE": "blend_core.validators",
    "PROBABILITY": "blend_core.validators",
    # conformance kit and testing helpers
    "check_backbone": "blend_core.testing",
    "check_task": "blend_core.testing",
    "check_output": "blend_core.contracts",
    "backbone_cases": "blend_core.testing",
    "BackboneCheckError": "blend_core.testing",
    "installed_plugin": "blend_core.testing",
    "plugin_registry": "blend_core.testing",
    "run_blend": "blend_core.testing",
    # helpers plugins share with the core
    "atomic_write": "blend_core.io",
    "write_json": "blend_core.io",
    "write_text": "blend_core.io",
    "write_yaml": "blend_core.io",
    "write_npz": "blend_core.predict",
    "gaussian_smooth": "blend_core.data",
    "bits_per_spike": "blend_core.metrics",
    "poisson_nll": "blend_core.metrics",
    "velocity_r2": "blend_core.metrics",
    "psth_r2": "blend_core.metrics",
    "nlb_scores": "blend_core.metrics",
    "classification_scores": "blend_core.metrics",
    "h5safe": "blend_core",  # a submodule: checked reads of HDF5 files (needs h5py)
    "score_rates": "blend_core.neural_task",
    # built-in components a plugin may reuse inside its own (e.g. a backbone's privileged path)
    "FeatureConfig": "blend_core.distillation",
    "FeatureLoss": "blend_core.distillation",
    "LinearConfig": "blend_core.encoders",
    "MLPConfig": "blend_core.encoders",
    "build_linear": "blend_core.encoders",
    "build_mlp": "blend_core.encoders",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name on first use: ``from blend_core.api import DataError`` in a
    torch-free data module does not import torch."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'blend_core.api' has no attribute {name!r}")
    imported = importlib.import_module(module)
    try:
        value = getattr(imported, name)
    except AttributeError:  # a public submodule, e.g. h5safe
        value = importlib.import_module(f"{module}.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from blend_core import __version__
    from blend_core.results import RunResult
    from blend_core import h5safe
    from blend_core.config import apply_overrides, build_config, load_config, read_yaml
    from blend_core.contracts import ContractError, check_output
    from blend_core.data import SPLITS, NeuralData, gaussian_smooth
    from blend_core.distillation import FeatureConfig, FeatureLoss
    from blend_core.encoders import LinearConfig, MLPConfig, build_linear, build_mlp
    from blend_core.errors import BlendError, ConfigError, DataError, PluginError
    from blend_core.hookspecs import HOOK_API_VERSION, Subparsers, hookimpl
    from blend_core.io import atomic_write, write_json, write_text, write_yaml
    from blend_core.loaded import LoadedRun, LoadedSeeds, load_run
    from blend_core.metrics import (
        bits_per_spike,
        classification_scores,
        nlb_scores,
        poisson_nll,
        psth_r2,
        velocity_r2,
    )
    from blend_core.neural_task import score_rates
    from blend_core.model import BlendModel, FeatureDims, Inputs, ModelDims, ModelOutput, fused_dims
    from blend_core.plugins import load_plugins
    from blend_core.predict import write_npz
    from blend_core.registry import Component, Register, Registry
    from blend_core.task import DataSource, Task
    from blend_core.validators import (
        NON_NEGATIVE,
        POSITIVE_INT,
        PROBABILITY,
        FieldError,
        each,
        in_range,
        non_negative_finite,
        positive_finite,
        template,
    )
    from blend_core.testing import (
        BackboneCheckError,
        backbone_cases,
        check_backbone,
        check_task,
        installed_plugin,
        plugin_registry,
        run_blend,
    )
