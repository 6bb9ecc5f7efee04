"""blend: behavior-guided neural population dynamics modeling via privileged knowledge distillation.

The public API lives in ``blend_core.api``; its names are also reachable here
(``from blend_core import hookimpl, ModelDims``), loaded on first use so that
importing a torch-free module such as ``blend_core.data`` does not import torch.
"""

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

from blend_core.hookspecs import hookimpl


def __getattr__(name: str) -> Any:
    # import_module, not ``from blend_core import api``: no attribute lookup on this
    # package while api (or a submodule it imports) is still being imported
    if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)  # a submodule (imported by the import system) or a dunder: not ours
    api = importlib.import_module("blend_core.api")
    if name in getattr(api, "__all__", ()):
        return getattr(api, name)
    raise AttributeError(f"module 'blend_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *importlib.import_module("blend_core.api").__all__})


__all__ = ["__version__", "hookimpl"]
