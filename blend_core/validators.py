"""The attrs validators that attrs lacks, for config classes of the core and of plugins.

Bounds use attrs' own (``attrs.validators.ge``, ``gt``, ``le``, ``lt``, ``in_``,
``optional``); this module adds intervals, finiteness and per-item checks. Every
failure names the key, never the class: ``blend_core.config`` reads attrs' messages
and :class:`FieldError` alike and prefixes the section path, so that a user reads
``train.batch_size: must be >= 1, got 0``. Plugins import these from ``blend_core.api``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

#: longest ``repr`` of a value put into a message (a value may be huge, e.g. an expanded YAML alias)
REPR_LIMIT = 60


def short_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters; never formats a huge container whole."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > limit:
        return f"<{type(value).__name__} of {len(value)} items>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FieldError(ValueError):
    """A value out of range or inconsistent with another; ``field`` is the key at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(test: Callable[[Any], bool], text: str) -> Validator:
    def validate(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None or not _number(value):  # None is allowed where the type allows it; types are checked elsewhere
            return
        if isinstance(value, float) and math.isnan(value) or not test(value):
            raise FieldError(attribute.name, f"must be {text}, got {short_repr(value)}")

    validate.__doc__ = f"must be {text}"
    return validate


def in_range(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False, high_text: str | None = None,
) -> Validator:
    """``low <= value <= high``, either end open if asked; written as an interval in messages."""
    text = f"in {'(' if low_open else '['}{low}, {high_text or high}{')' if high_open else ']'}"

    def test(v: float) -> bool:
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return above and below

    return _check(test, text)


def positive_finite() -> Validator:
    """A finite number > 0 (e.g. a learning rate)."""
    return _check(lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative_finite() -> Validator:
    """A finite number >= 0 (e.g. a loss weight)."""
    return _check(lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def each(validator: Validator) -> Validator:
    """Apply ``validator`` to every item of a tuple or list value."""

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        for item in value or ():
            validator(instance, attribute, item)

    return validate


def template(*fields: str) -> Validator:
    """A ``str.format`` pattern that names only ``fields`` (e.g. ``"{stem}_activity.h5ad"``)."""
    import string

    def validate(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str):
            return
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:  # e.g. an unmatched "{"
            raise FieldError(attribute.name, f"not a valid pattern ({exc}), got {short_repr(value)}") from None
        unknown = sorted(names - set(fields))
        if unknown:
            allowed = ", ".join("{" + f + "}" for f in fields) or "none"
            raise FieldError(attribute.name, f"unknown placeholder {{{short_repr(unknown[0])[1:-1]}}} in "
                                             f"{short_repr(value)}; allowed: {allowed}")

    return validate


#: common shorthands (attrs' own bounds; wrap in ``attrs.validators.optional`` where None is allowed)
POSITIVE_INT = attrs.validators.ge(1)
NON_NEGATIVE = attrs.validators.ge(0)
PROBABILITY = in_range(0.0, 1.0, high_open=True)  #: e.g. a dropout rate: [0, 1)
