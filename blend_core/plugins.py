"""Finding and loading plugins, built-in and external, the same way."""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable

import attrs
import pluggy

from blend_core import hookspecs
from blend_core.errors import PluginError
from blend_core.registry import KIND_HOOKS, Register, Registry

ENTRY_POINT_GROUP = "blend"
AUTOLOAD_ENV = "BLEND_DISABLE_PLUGIN_AUTOLOAD"

#: Built-in plugins, registered exactly like external ones.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "blend_core.builtin.data",
    "blend_core.builtin.tasks",
    "blend_core.builtin.backbones",
    "blend_core.builtin.encoders",
    "blend_core.builtin.losses",
    "blend_core.builtin.tracking",
    "blend_core.builtin.report_data",
)


@attrs.frozen
class PluginInfo:
    name: str
    version: str
    builtin: bool


@attrs.define
class Plugins:
    """A loaded plugin set: the pluggy manager, the component registry, and what failed."""

    manager: pluggy.PluginManager
    registry: Registry
    infos: list[PluginInfo]
    failures: list[str]


def _entry_point_version(ep: EntryPoint) -> str:
    """``"distribution version"`` of the package that declares ``ep`` (else of the module it names)."""
    from blend_core.provenance import distribution_of

    dist = getattr(ep, "dist", None)
    if dist is None:
        return distribution_of(ep.value.split(":")[0]) or "unknown"
    return f"{dist.metadata['Name']} {dist.version}"


def load_plugins(
    extra: Iterable[str] = (),
    *,
    autoload: bool | None = None,
    entry_points_: Iterable[EntryPoint] | None = None,
) -> Plugins:
    """Register built-ins, then external plugins, and build the registry.

    ``extra`` names plugins to load even when autoloading is off: entry-point
    names of the ``blend`` group, never arbitrary modules; one that is not
    installed, or fails to load, is a PluginError. ``entry_points_`` replaces the
    installed entry points (for tests).
    """
    if autoload is None:
        autoload = not autoload_disabled()
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    failures: list[str] = []
    from blend_core import __version__

    for module in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
        infos.append(PluginInfo(module, f"blend-core {__version__}", True))

    eps = list(entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_)
    wanted = list(extra)
    for name in wanted:
        if not isinstance(name, str):  # e.g. `plugins: [{a: 1}]`
            from blend_core.validators import short_repr

            raise PluginError(f"plugins: expected a list of plugin names, got {short_repr(name)} in it")
    chosen = eps if autoload else [ep for ep in eps if ep.name in wanted]
    for ep in chosen:
        version = _entry_point_version(ep)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not stop the others
            failures.append(f"plugin '{ep.name}' ({version}) failed to load: {exc}")
            continue
        infos.append(PluginInfo(ep.name, version, False))
    known = {ep.name for ep in eps}
    for name in wanted:  # named on purpose (-p, plugins:): a plugin that is missing or broken is an error
        if name not in known and not pm.has_plugin(name):
            raise PluginError(
                f"plugin '{name}': not installed (plugins are entry points of the '{ENTRY_POINT_GROUP}' group; "
                f"installed: {', '.join(sorted(known)) or 'none'})"
            )
        broken = [line for line in failures if line.startswith(f"plugin '{name}' ")]
        if broken:
            raise PluginError(broken[0])
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin '{pm.get_name(exc.plugin) or exc.plugin}': {exc}") from None
    registry = Registry(versions={info.name: info.version for info in infos})
    for kind, hook_name in KIND_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            register = Register(kind, impl.plugin_name, registry)
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                failures.append(f"plugin '{impl.plugin_name}' failed to register {kind}s: {exc}")
    return Plugins(manager=pm, registry=registry, infos=infos, failures=failures)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def autoload_disabled() -> bool:
    """Whether ``BLEND_DISABLE_PLUGIN_AUTOLOAD`` is set to a true value (1/true/yes/on; 0/false/no/off: not)."""
    value = os.environ.get(AUTOLOAD_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PluginError(f"{AUTOLOAD_ENV}: expected one of 1, true, yes, on or 0, false, no, off; "
                      f"got {os.environ[AUTOLOAD_ENV][:40]!r}")


def report_failures(plugins: Plugins) -> None:
    for line in plugins.failures:
        print(f"warning: {line}", file=sys.stderr)
