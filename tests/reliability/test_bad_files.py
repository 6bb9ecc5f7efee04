"""Bad config files and bad paths: one line naming the file, exit 2, nothing created, input unchanged."""

from __future__ import annotations

import os

import pytest
import yaml


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize("name, text, message", [
    ("latin1.yaml", b"data: {type: synthetic}\n# caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 29)"),
    ("dup.yaml", "data: {type: synthetic}\nbackbone: {type: ndt}\ndata: {type: synthetic}\n",
     "line 3: duplicate key 'data' (first given on line 1)"),
    ("dupnested.yaml", "data: {type: synthetic}\nbackbone:\n  type: ndt\n  d_model: 16\n  d_model: 32\n",
     "line 5: duplicate key 'd_model' (first given on line 4)"),
    ("bomb.yaml", ALIAS_BOMB, "line 6: YAML aliases expand to more than 100000 values; write the config out plainly"),
    ("recursive.yaml", "a: &a [*a]\n", "line 1: an alias refers to its own anchor (recursive YAML)"),
    ("broken.yaml", "data: [\n", "not valid YAML (line 2, column 1): expected the node content, but found '<stream end>'"),
    ("list.yaml", "- 1\n- 2\n", "expected a mapping of sections, got list"),
])
def test_bad_config_file(tmp_path, cli, digest, name, text, message):
    path = _write(tmp_path / name, text)
    before = digest(path)
    out = tmp_path / "run"
    code, _, err = cli("run", path, "--out", out)
    assert (code, err) == (2, f"error: {path}: {message}\n")
    assert not out.exists() and digest(path) == before


def test_a_huge_value_is_never_printed_whole(tmp_path, tiny_raw, cli):
    tiny_raw["train"]["lr"] = ["x" * 50] * 1000
    path = _write(tmp_path / "c.yaml", yaml.safe_dump(tiny_raw))
    code, _, err = cli("validate", path)
    assert (code, err) == (2, f"error: {path}: train.lr: expected float, got <list of 1000 items>\n")


def test_missing_config(tmp_path, cli):
    assert cli("run", tmp_path / "nope.yaml") == (2, "", f"error: {tmp_path / 'nope.yaml'}: config file not found\n")


def test_out_below_a_file_is_one_line(tmp_path, tiny_config_file, cli, digest):
    blocker = _write(tmp_path / "file.txt", "mine")
    code, _, err = cli("run", tiny_config_file, "--out", blocker / "run")
    assert code == 2 and err.startswith(f"error: {blocker / 'run'}") and err.count("\n") == 1
    assert blocker.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_one_line(tmp_path, tiny_config_file, cli):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, _, err = cli("run", tiny_config_file, "--out", parent / "run")
    finally:
        parent.chmod(0o755)
    assert code == 2 and err.count("\n") == 1 and "Permission denied" in err


def test_autoload_switch_reads_words(monkeypatch, cli):
    monkeypatch.setenv("BLEND_DISABLE_PLUGIN_AUTOLOAD", "false")
    code, out, _ = cli("plugins")
    from importlib.metadata import entry_points

    installed = [ep.name for ep in entry_points(group="blend")]
    assert code == 0 and all(f"{name}  " in out for name in installed)  # 'false' keeps autoload on
    monkeypatch.setenv("BLEND_DISABLE_PLUGIN_AUTOLOAD", "yes")
    code, out, _ = cli("plugins")
    assert code == 0 and not any(f"\n{name}  " in "\n" + out for name in installed)
    monkeypatch.setenv("BLEND_DISABLE_PLUGIN_AUTOLOAD", "maybe")
    assert cli("plugins") == (2, "", "error: BLEND_DISABLE_PLUGIN_AUTOLOAD: expected one of 1, true, yes, on "
                                     "or 0, false, no, off; got 'maybe'\n")


def test_plugins_key_imports_no_module(tmp_path, tiny_raw, cli):
    """``plugins: [os]`` must not import a module by name; a plugin that is not installed is an error."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_blend_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    tiny_raw["plugins"] = ["evil_blend_mod"]
    path = _write(tmp_path / "c.yaml", yaml.safe_dump(tiny_raw))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the module is importable from here
    try:
        code, _, err = cli("validate", path)
    finally:
        os.chdir(cwd)
    assert code == 2 and err.startswith("error: plugin 'evil_blend_mod': not installed (plugins are entry points")
    assert not marker.exists()
