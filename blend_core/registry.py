"""Component registry: the one place where a component is looked up by name."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from blend_core.errors import ConfigError, PluginError
from blend_core.validators import short_repr

# kind -> hook that contributes it; the kind string is also what error messages say.
KIND_HOOKS: dict[str, str] = {
    "data source": "blend_add_data_sources",
    "task": "blend_add_tasks",
    "backbone": "blend_add_backbones",
    "encoder": "blend_add_encoders",
    "distillation loss": "blend_add_distillation_losses",
}


@attrs.frozen(kw_only=True)
class Component:
    """A named, configurable part contributed by a plugin."""

    kind: str
    name: str
    config_cls: type
    factory: Callable[..., Any]
    plugin: str
    description: str = ""

    def build(self, config: Any, *args: Any, **kwargs: Any) -> Any:
        return self.factory(config, *args, **kwargs)

    def label(self, registry: Registry | None = None) -> str:
        """``backbone 'gru' (blend-gru 0.1.0)``: how errors name a component and who supplied it."""
        origin = registry.origin(self.plugin) if registry is not None else self.plugin
        return f"{self.kind} '{self.name}' ({origin})"


@attrs.define
class Register:
    """The callable handed to a registration hook, bound to one kind and one plugin."""

    kind: str
    plugin: str
    registry: Registry

    def __call__(
        self, name: str, config_cls: type, factory: Callable[..., Any], description: str = ""
    ) -> None:
        if not attrs.has(config_cls):
            raise PluginError(
                f"plugin '{self.plugin}': {self.kind} '{name}' config class must be an attrs class"
            )
        if not callable(factory):
            raise PluginError(f"plugin '{self.plugin}': {self.kind} '{name}' factory must be callable")
        self.registry.add(
            Component(
                kind=self.kind,
                name=name,
                config_cls=config_cls,
                factory=factory,
                plugin=self.plugin,
                description=description,
            )
        )


@attrs.define
class Registry:
    """All components by kind and name."""

    components: dict[str, dict[str, Component]] = attrs.field(
        factory=lambda: {kind: {} for kind in KIND_HOOKS}
    )
    #: plugin name -> "distribution version" (e.g. "blend-gru 0.1.0"), filled in by ``load_plugins``
    versions: dict[str, str] = attrs.field(factory=dict)

    def origin(self, plugin: str) -> str:
        """The distribution and version that supplied ``plugin``, or the plugin's name if unknown."""
        version = self.versions.get(plugin)
        return plugin if version in (None, "", "unknown") else version

    #: name collisions, one line each; listed by ``blend plugins``, refused by every lookup
    conflicts: list[str] = attrs.field(factory=list)

    def add(self, component: Component) -> None:
        """Add a component; a name taken by another plugin is recorded as a conflict (the first one stays)."""
        named = self.components[component.kind]
        if component.name in named:
            other = named[component.name].plugin
            self.conflicts.append(
                f"{component.kind} '{component.name}' is registered by both "
                f"'{other}' and '{component.plugin}'"
            )
            return
        named[component.name] = component

    def check_conflicts(self) -> None:
        """Refuse to use a registry in which two plugins claim one name (``blend plugins`` still lists it)."""
        if self.conflicts:
            raise PluginError(
                f"{self.conflicts[0]}; uninstall one, or set BLEND_DISABLE_PLUGIN_AUTOLOAD=1 and name plugins with -p"
            )

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str, path: str | None = None) -> Component:
        self.check_conflicts()
        try:
            return self.components[kind][name]
        except KeyError:
            where = f"{path}: " if path else ""
            available = ", ".join(self.names(kind)) or "none"
            raise ConfigError(
                [f"{where}unknown {kind} {short_repr(name)}; available: {available}"]
            ) from None

    def by_plugin(self) -> dict[str, list[Component]]:
        out: dict[str, list[Component]] = {}
        for named in self.components.values():
            for comp in named.values():
                out.setdefault(comp.plugin, []).append(comp)
        return out
