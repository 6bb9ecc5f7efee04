"""Roles as records: one place says who sees behavior, who distils from whom, whose model each is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import blend_core
from blend_core.roles import CONTROLS, MAIN, ROLE_ORDER, ROLES, in_display_order, role
from blend_core.stats import comparable


def test_the_records_hang_together():
    assert set(ROLE_ORDER) == set(ROLES) and len({r.order for r in ROLES.values()}) == len(ROLES)
    for r in ROLES.values():
        assert r.teacher is None or ROLES[r.teacher].teacher is None  # a teacher is trained alone, first
        assert not (r.sees_behavior and not r.privileged)  # behavior reaches a model only through the encoder
    assert all(name in ROLES for name in MAIN) and all(n in ROLES for names in CONTROLS.values() for n in names)
    assert [n for n in ROLES if ROLES[n].blind] == ["control_teacher"]
    assert (role("student").teacher, role("control_student").teacher) == ("teacher", "control_teacher")
    with pytest.raises(ValueError, match="unknown role 'tutor'; expected one of: teacher, student"):
        role("tutor")


def test_display_order_and_comparability_come_from_the_records():
    assert in_display_order(["smoothing", "baseline", "control_student", "teacher"]) == [
        "teacher", "baseline", "control_student", "smoothing"]
    assert not comparable("teacher", "vel R2") and comparable("control_teacher", "vel R2")


#: modules that ask the records, never compare role names
CONVERTED = ("build.py", "contracts.py", "controls.py", "stats.py")


@pytest.mark.parametrize("module", CONVERTED)
def test_role_names_are_not_compared_as_strings(module):
    tree = ast.parse((Path(blend_core.__file__).parent / module).read_text())
    found = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Compare)
             and any(isinstance(c, ast.Constant) and c.value in ROLES for c in [node.left, *node.comparators])]
    assert found == []
