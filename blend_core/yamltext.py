"""Strict YAML for configs and saved runs: duplicate keys refused, alias bombs capped, YAML 1.2 floats.

A leaf (yaml and ``blend_core.errors`` only), so that the config, the run directory and
the sweep read YAML the same way without importing one another.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from blend_core.errors import BlendError
from blend_core.validators import short_repr

#: most YAML nodes a config may expand to (aliases count each time they are used): a guard against alias bombs
MAX_YAML_NODES = 100_000

_FLOAT_1_2 = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class _YAMLError(Exception):
    """A problem found while loading, with the line it is on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")


class StrictLoader(yaml.SafeLoader):
    """Safe YAML, plus: duplicate keys are errors, aliases cannot expand past
    ``MAX_YAML_NODES``, and ``1e-3`` is a float (YAML 1.2) rather than a string (YAML 1.1)."""

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _YAMLError(line, f"duplicate key {short_repr(key)} (first given on line {seen[key]})")
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def _expanded_size(node: Any, sizes: dict[int, int], open_: set[int]) -> int:
    """Number of nodes ``node`` stands for once every alias is expanded."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise _YAMLError(node.start_mark.line + 1, "an alias refers to its own anchor (recursive YAML)")
    open_.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(n, sizes, open_) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    open_.discard(key)
    if size > MAX_YAML_NODES:
        raise _YAMLError(node.start_mark.line + 1,
                         f"YAML aliases expand to more than {MAX_YAML_NODES} values; write the config out plainly")
    sizes[key] = size
    return size


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text with :class:`StrictLoader`; one-line BlendError naming ``where`` on failure."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _YAMLError as exc:
        raise BlendError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise BlendError(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise BlendError(f"{where}: YAML nested too deeply") from None
