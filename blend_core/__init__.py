"""blend: behavior-guided neural population dynamics modeling via privileged knowledge distillation."""

__version__ = "0.1.0"

from blend_core.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
