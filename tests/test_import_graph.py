"""No import cycle in blend_core or a bundled plugin, lazy (function-level) imports included."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "import_floors", Path(__file__).resolve().parents[1] / "scripts" / "import_floors.py")
floors_mod = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(floors_mod)


@pytest.mark.parametrize("package", sorted(floors_mod.PACKAGES))
def test_no_import_cycle(package):
    edges = floors_mod.graph(package, floors_mod.PACKAGES[package])
    assert len(edges) > 5  # the package was found and read
    assert floors_mod.cycles(edges) == []


def test_the_contract_and_result_types_are_on_the_ground_floor():
    runtime = floors_mod.graph("blend_core", floors_mod.PACKAGES["blend_core"], typing=False)
    floors = floors_mod.floors(runtime)
    # the contract and what it hands out need nothing of blend at run time (types for checkers only)
    assert floors["blend_core.hookspecs"] == floors["blend_core.results"] == 1
    assert floors["blend_core.api"] == max(floors.values())  # the public surface is the top


def test_a_lazy_import_cycle_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import pkg.b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import x\n    return x\n")
    (pkg / "c.py").write_text("from . import a\n")
    edges = floors_mod.graph("pkg", pkg)
    assert edges["pkg.c"] == {"pkg.a"}
    assert floors_mod.cycles(edges) == [["pkg.a", "pkg.b"]]
    with pytest.raises(ValueError, match="import cycle"):
        floors_mod.floors(edges)


def test_the_architecture_page_shows_todays_floors():
    """docs/architecture.md's floor table is the one the code gives (regenerate it if this fails)."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    start = page.index("<!-- floors:")
    table = page[page.index("\n", start) + 1: page.index("<!-- end floors -->")]
    assert table == floors_mod.markdown(), (
        "docs/architecture.md is out of date: paste the output of `python scripts/import_floors.py --markdown`")
