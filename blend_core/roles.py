"""The roles of a BLEND run as records: who sees behavior, who distils from whom, whose model each is.

A role is a name in files (``checkpoints/ROLE.pt``, ``metrics.json``, ``history.csv``) and a
:class:`Role` here; code asks the record (``role.privileged``, ``role.teacher``) instead of
comparing names, so that a control is added by its records (and, if its model differs, a
wrapper in ``blend_core.controls``). A leaf: attrs only.
"""

from __future__ import annotations

from typing import Iterable, Literal

import attrs


@attrs.frozen(kw_only=True)
class Role:
    name: str
    #: given the real behavior as input: its behavior-decoding metrics are not comparable to the others'
    sees_behavior: bool
    #: the role it distils from (None: trained on the task alone)
    teacher: str | None
    #: whose model it is: the teacher's (privileged encoder and fusion, the ``teacher:`` backbone if
    #: given) or the student's (the ``backbone:`` section, spikes only)
    built_as: Literal["teacher", "student"]
    #: where tables and figures show it, lowest first
    order: int

    @property
    def privileged(self) -> bool:
        """Built with the privileged encoder (the teacher's architecture)."""
        return self.built_as == "teacher"

    @property
    def blind(self) -> bool:
        """The teacher's architecture shown zeros instead of behavior (the self-distillation control)."""
        return self.privileged and not self.sees_behavior


_ALL = (
    Role(name="teacher", sees_behavior=True, teacher=None, built_as="teacher", order=0),
    Role(name="student", sees_behavior=False, teacher="teacher", built_as="student", order=1),
    Role(name="baseline", sees_behavior=False, teacher=None, built_as="student", order=2),
    Role(name="control_teacher", sees_behavior=False, teacher=None, built_as="teacher", order=3),
    Role(name="control_student", sees_behavior=False, teacher="control_teacher", built_as="student", order=4),
)
#: every role, by name
ROLES: dict[str, Role] = {r.name: r for r in _ALL}
#: the roles every run trains, in training order
MAIN: tuple[str, ...] = ("teacher", "student", "baseline")
#: the roles each control (``controls: [...]``) adds, in training order
CONTROLS: dict[str, tuple[str, ...]] = {"self": ("control_teacher", "control_student")}
#: every role in display order
ROLE_ORDER: tuple[str, ...] = tuple(r.name for r in sorted(_ALL, key=lambda r: r.order))


def role(name: str) -> Role:
    """The record of role ``name``; ValueError naming the known roles for any other name."""
    try:
        return ROLES[name]
    except KeyError:
        raise ValueError(f"unknown role {name!r}; expected one of: {', '.join(ROLES)}") from None


def in_display_order(names: Iterable[str]) -> list[str]:
    """``names`` in display order; names that are not roles (reference rows) follow, as given."""
    names = list(names)
    return [r for r in ROLE_ORDER if r in names] + [r for r in names if r not in ROLES]
