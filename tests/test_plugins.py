"""Plugin loading: built-ins through the same hooks, external entry points, broken plugins."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from blend_core.config import build_config
from blend_core.errors import PluginError
from blend_core.plugins import BUILTIN_PLUGINS, load_plugins

FAKE_PLUGIN = '''
import attrs
from blend_core import hookimpl
from blend_core.backbones.ndt import NDTConfig, build_ndt

@attrs.frozen(kw_only=True)
class TinyConfig:
    width: int = 8

def build_tiny(config, dims):
    return build_ndt(NDTConfig(num_layers=1, d_model=config.width, ffn_dim=8, num_heads=1), dims)

@hookimpl
def blend_add_backbones(register):
    register("tiny", TinyConfig, build_tiny, "a test backbone")
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "fake_blend_plugin.py").write_text(textwrap.dedent(FAKE_PLUGIN))
    (tmp_path / "dup_blend_plugin.py").write_text(FAKE_PLUGIN.replace('"tiny"', '"ndt"'))
    (tmp_path / "typo_blend_plugin.py").write_text(
        "from blend_core import hookimpl\n@hookimpl\ndef blend_add_backbone(register):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("fake_blend_plugin", "dup_blend_plugin", "typo_blend_plugin"):
        sys.modules.pop(name, None)


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="blend")


def test_builtins_register_through_hooks():
    plugins = load_plugins(autoload=False)
    names = {c.plugin for comps in plugins.registry.components.values() for c in comps.values()}
    assert names <= set(BUILTIN_PLUGINS)  # some built-ins (tracking) contribute hooks, not components
    assert plugins.registry.names("backbone") == ["lfads", "ndt", "stndt"]
    assert plugins.registry.names("distillation loss") == ["correlation", "feature", "hard", "poisson_kl", "soft"]
    assert plugins.registry.names("encoder") == ["identity", "linear", "mlp"]


def test_entry_point_plugin_is_usable_from_yaml(plugin_dir, tiny_raw):
    plugins = load_plugins(autoload=True, entry_points_=[ep("fake", "fake_blend_plugin")])
    comp = plugins.registry.get("backbone", "tiny")
    assert comp.plugin == "fake"
    tiny_raw["backbone"] = {"type": "tiny", "width": 4}
    config = build_config(tiny_raw, plugins.registry)
    assert config.backbone.options.width == 4


def test_broken_plugin_does_not_stop_the_others(plugin_dir):
    plugins = load_plugins(autoload=True, entry_points_=[
        ep("broken", "no_such_module_for_blend"), ep("fake", "fake_blend_plugin"),
    ])
    assert "tiny" in plugins.registry.names("backbone")
    assert len(plugins.failures) == 1
    assert plugins.failures[0].startswith("plugin 'broken' (unknown) failed to load: No module named")


def test_duplicate_component_names_both_plugins(plugin_dir):
    plugins = load_plugins(autoload=True, entry_points_=[ep("dup", "dup_blend_plugin")])  # loading still works
    line = "backbone 'ndt' is registered by both 'blend_core.builtin.backbones' and 'dup'"
    assert plugins.registry.conflicts == [line]
    with pytest.raises(PluginError) as info:  # but no component can be used
        plugins.registry.get("backbone", "ndt")
    assert str(info.value).startswith(line)


def test_misspelled_hook_is_caught(plugin_dir):
    with pytest.raises(PluginError) as info:
        load_plugins(autoload=True, entry_points_=[ep("typo", "typo_blend_plugin")])
    assert "plugin 'typo'" in str(info.value) and "blend_add_backbone" in str(info.value)


def test_autoload_off_loads_only_named_plugins(plugin_dir, monkeypatch):
    eps = [ep("fake", "fake_blend_plugin"), ep("broken", "no_such_module_for_blend")]
    monkeypatch.setenv("BLEND_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "tiny" not in load_plugins(entry_points_=eps).registry.names("backbone")
    plugins = load_plugins(["fake"], entry_points_=eps)
    assert "tiny" in plugins.registry.names("backbone") and plugins.failures == []


def test_one_parser_of_the_autoload_variable():
    """Only ``plugins.autoload_disabled`` reads BLEND_DISABLE_PLUGIN_AUTOLOAD (the sweep hands its answer
    to the Ray workers), so the driver and the workers cannot disagree on a value such as ``false``."""
    import ast
    from pathlib import Path

    import blend_core

    def reads_env(node: ast.AST) -> bool:
        if not isinstance(node, (ast.Call, ast.Subscript)):
            return False
        target = node.func if isinstance(node, ast.Call) else node.value
        text = ast.unparse(target)
        if not (text.startswith("os.environ") or text == "os.getenv"):
            return False
        args = node.args if isinstance(node, ast.Call) else [node.slice]
        return any(ast.unparse(a) in ("AUTOLOAD_ENV", repr("BLEND_DISABLE_PLUGIN_AUTOLOAD")) for a in args[:1])

    root = Path(blend_core.__file__).parent
    readers = []
    for path in sorted(root.rglob("*.py")):
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, ast.FunctionDef) and any(reads_env(n) for n in ast.walk(func)):
                readers.append(f"{path.relative_to(root)}:{func.name}")
    assert readers == ["plugins.py:autoload_disabled"]


def test_run_finished_hooks_run_last_registered_first(tmp_path, monkeypatch):
    """What hookspecs and docs/plugins.md promise: pluggy calls the last registered plugin first."""
    for name in ("first_order_plugin", "second_order_plugin"):
        (tmp_path / f"{name}.py").write_text(
            "from blend_core import hookimpl\n"
            "@hookimpl\n"
            f"def blend_run_finished(run):\n    run.calls.append({name!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        plugins = load_plugins(autoload=True, entry_points_=[ep("first", "first_order_plugin"),
                                                              ep("second", "second_order_plugin")])
        from types import SimpleNamespace

        run = SimpleNamespace(data=None, calls=[])  # no data: the built-in report-data hook writes nothing
        plugins.manager.hook.blend_run_finished(run=run)
        assert run.calls == ["second_order_plugin", "first_order_plugin"]
    finally:
        for name in ("first_order_plugin", "second_order_plugin"):
            sys.modules.pop(name, None)
