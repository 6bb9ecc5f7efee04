"""The public API: one module to import from, plugins in this repository use only it, and provenance."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import blend_core
from blend_core import api

ROOT = Path(__file__).resolve().parents[1]
NEEDED = {"hookimpl", "Register", "ModelDims", "ModelOutput", "FeatureDims", "Inputs", "NeuralData", "Task",
          "DataSource", "BlendError", "ConfigError", "DataError", "PluginError", "ContractError",
          "check_backbone", "check_task", "backbone_cases", "plugin_registry", "run_blend"}


def test_api_exports_what_a_plugin_author_needs():
    assert NEEDED <= set(api.__all__)
    for name in api.__all__:
        assert getattr(api, name) is getattr(blend_core, name)  # also reachable as blend_core.NAME
    with pytest.raises(AttributeError):
        blend_core.no_such_name  # noqa: B018


def test_data_layer_stays_torch_free():
    code = "import sys, blend_core.data, blend_core.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plugins_in_this_repository_import_only_the_public_api():
    """``grep -rn "from blend_core\\.[a-z_]* import" plugins examples`` shows only blend_core.api."""
    pattern = re.compile(r"from blend_core\.([a-z_]*) import")
    offenders = []
    for folder in ("plugins", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                match = pattern.search(line)
                if match and match.group(1) != "api":
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []


def test_protocols_are_checked_when_a_component_is_built(tiny_raw, builtin_plugins):
    from blend_core.build import build_task, load_data
    from blend_core.config import build_config
    from blend_core.registry import Component

    config = build_config(tiny_raw, builtin_plugins.registry)
    registry = builtin_plugins.registry
    real = registry.components["data source"]["synthetic"]
    registry.components["data source"]["synthetic"] = Component(
        kind="data source", name="synthetic", config_cls=real.config_cls, factory=lambda c: object(),
        plugin=real.plugin)
    with pytest.raises(api.PluginError, match=r"data source 'synthetic' \(blend-core .*\): built a object without load"):
        load_data(config, registry)
    registry.components["data source"]["synthetic"] = real
    _, data = load_data(config, registry)
    real_task = registry.components["task"]["neural"]
    registry.components["task"]["neural"] = Component(
        kind="task", name="neural", config_cls=real_task.config_cls, factory=lambda c, d, dev: object(),
        plugin=real_task.plugin)
    with pytest.raises(api.PluginError, match="lacks dims, behavior_dim, batches, inputs, loss, evaluate, predict"):
        build_task(config, registry, data, None)
    registry.components["task"]["neural"] = real_task
    api.check_task(build_task(config, registry, data, __import__("torch").device("cpu")))


def test_provenance_names_versions_and_the_plugin_of_each_component(tiny_raw):
    from blend_core.config import build_config
    from blend_core.plugins import load_plugins
    from blend_core.provenance import provenance

    plugins = load_plugins(["gru"], autoload=False)
    tiny_raw["teacher"] = {"type": "gru", "hidden_dim": 8}
    record = provenance(build_config(tiny_raw, plugins.registry), plugins)
    import torch

    assert record["blend"] == blend_core.__version__ and record["torch"] == torch.__version__
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "git_commit" in record
    versions = {p["name"]: p["version"] for p in record["plugins"]}
    assert versions["gru"] == "blend-gru 0.1.0"
    assert versions["blend_core.builtin.backbones"] == f"blend-core {blend_core.__version__}"
    assert record["components"]["teacher"] == {"kind": "backbone", "name": "gru", "plugin": "gru",
                                               "version": "blend-gru 0.1.0"}
    assert record["components"]["backbone"]["plugin"] == "blend_core.builtin.backbones"
    assert record["components"]["distillation.losses.0"]["name"] == "correlation"


def test_plugins_command_and_help_show_a_conflict_that_other_commands_refuse(
        tmp_path, monkeypatch, capsys, tiny_config_file):
    (tmp_path / "tests_dup_plugin.py").write_text(
        "import attrs\nfrom blend_core.api import hookimpl\n"
        "@attrs.frozen\nclass C:\n    pass\n"
        "@hookimpl\ndef blend_add_backbones(register):\n    register('ndt', C, lambda c, d: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    api.installed_plugin(monkeypatch, "dup", "tests_dup_plugin")
    line = "backbone 'ndt' is registered by both 'blend_core.builtin.backbones' and 'dup'"
    assert api.run_blend(["plugins"]) == 0
    assert f"CONFLICT {line}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        api.run_blend(["--help"])
    assert f"plugin conflict: {line}" in " ".join(capsys.readouterr().out.split())  # help text is wrapped
    assert api.run_blend(["validate", str(tiny_config_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {line}; ") and err.count("\n") == 1


def test_static_imports_of_the_api_match_its_lazy_table():
    """Type checkers read the TYPE_CHECKING imports; they must list exactly the exported names."""
    import ast

    tree = ast.parse((ROOT / "blend_core" / "api.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    static = {(node.module, a.name) for node in ast.walk(block) if isinstance(node, ast.ImportFrom)
              for a in node.names}
    assert static == set(zip(api._EXPORTS.values(), api._EXPORTS))


def test_validators_for_plugins_are_public_and_read_like_the_cores():
    """A plugin's config class uses the exported validators (and attrs' own bounds); a bad value
    is one ``section.key: must be ..., got ...`` line, None passes where the field allows it."""
    import attrs

    from blend_core.config import structure

    @attrs.frozen(kw_only=True)
    class Options:
        rate: float = attrs.field(default=0.5, validator=api.in_range(0.0, 1.0, low_open=True))
        scale: float = attrs.field(default=1.0, validator=api.positive_finite())
        widths: tuple[int, ...] = attrs.field(default=(1,), validator=api.each(api.POSITIVE_INT))
        limit: int | None = attrs.field(default=None, validator=attrs.validators.optional(api.NON_NEGATIVE))

    problems: list[str] = []
    assert structure({"limit": None}, Options, "data.", problems) == Options() and problems == []
    for raw, line in [({"rate": 0.0}, "data.rate: must be in (0.0, 1.0], got 0.0"),
                      ({"scale": float("inf")}, "data.scale: must be a finite number > 0, got inf"),
                      ({"widths": [2, 0]}, "data.widths: must be >= 1, got 0"),
                      ({"limit": -1}, "data.limit: must be >= 0, got -1")]:
        problems = []
        assert structure(raw, Options, "data.", problems) is None
        assert problems == [line]
