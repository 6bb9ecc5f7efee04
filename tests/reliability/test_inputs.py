"""A run records the sha256 of every input data file in provenance.json; --resume refuses changed data in
one line naming the file, and keeps (appends to) the provenance instead of replacing it."""

from __future__ import annotations

import json
import re
import shutil

import attrs
import pytest

from blend_core.errors import BlendError


@attrs.define
class FileSource:
    """A data source that declares one input file (the data itself comes from the synthetic source)."""

    inner: object
    path: object

    def load(self):
        return self.inner.load()

    def input_files(self):
        return [self.path]


def _changed(path) -> re.Pattern:
    return re.compile(rf"{re.escape(str(path.resolve()))}: input data changed since the run started \(sha256 "
                      r"[0-9a-f]{12}\.\.\. in .*provenance\.json, now [0-9a-f]{12}\.\.\.\); --resume continues "
                      r"a run only on the data it started with; use a new --out")


def test_resume_refuses_a_changed_input_file_and_keeps_the_provenance(tmp_path, tiny_raw, builtin_plugins, digest):
    from blend_core.build import load_data
    from blend_core.config import build_config
    from blend_core.runner import run

    tiny_raw["train"]["max_epochs"] = 1
    config = build_config(tiny_raw, builtin_plugins.registry)
    source, data = load_data(config, builtin_plugins.registry)
    session = tmp_path / "session.bin"
    session.write_bytes(b"session A")
    loaded = (FileSource(source, session), data)
    out = tmp_path / "run"
    run(config, builtin_plugins, out_dir=out, loaded=loaded)
    provenance = out / "provenance.json"
    recorded = json.loads(provenance.read_text())["inputs"]
    assert recorded == [{"path": str(session.resolve()), "sha256": digest(session), "bytes": 9}]

    (out / "checkpoints" / "baseline.pt").unlink()  # as if killed during the baseline
    (out / "metrics.json").unlink()
    before = digest(provenance)
    session.write_bytes(b"session B")  # another session of the same layout
    with pytest.raises(BlendError) as refused:
        run(config, builtin_plugins, out_dir=out, resume=True, loaded=loaded)
    assert _changed(session).fullmatch(str(refused.value)), refused.value
    assert digest(provenance) == before and not (out / "checkpoints" / "baseline.pt").exists()

    session.write_bytes(b"session A")  # the run's own data again: resumed, provenance appended to
    run(config, builtin_plugins, out_dir=out, resume=True, loaded=loaded)
    saved = json.loads(provenance.read_text())
    assert saved["inputs"] == recorded and len(saved["resumed"]) == 1 and "command" in saved


def test_a_changed_nwb_file_is_refused_by_resume(tmp_path, cli, monkeypatch, digest):
    """The issue's probe: another session of the same layout put in place of the NWB file."""
    pytest.importorskip("pynwb")
    import yaml
    from blend_nwb.synthetic import write_nlb_file

    monkeypatch.setenv("BLEND_CACHE_DIR", str(tmp_path / "cache"))
    nwb = write_nlb_file(tmp_path / "session.nwb", dataset="mc_maze", n_trials=60, n_heldin=10, n_heldout=4, seed=1)
    other = write_nlb_file(tmp_path / "other.nwb", dataset="mc_maze", n_trials=60, n_heldin=10, n_heldout=4, seed=2)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "plugins": ["nwb"], "data": {"type": "nwb", "path": str(nwb), "dataset": "mc_maze"},
        "backbone": {"type": "ndt", "num_layers": 1, "d_model": 8, "ffn_dim": 16, "num_heads": 2},
        "privileged": {"type": "mlp", "hidden_dim": 4, "out_dim": 4},
        "train": {"max_epochs": 1, "batch_size": 16, "warmup_steps": 1, "progress": False, "device": "cpu"},
    }))
    out = tmp_path / "run"
    assert cli("run", config, "--out", out)[0] == 0
    assert json.loads((out / "provenance.json").read_text())["inputs"][0]["sha256"] == digest(nwb)
    (out / "checkpoints" / "student.pt").unlink()
    shutil.copyfile(other, nwb)
    code, _, err = cli("run", config, "--out", out, "--resume")
    assert code == 2 and _changed(nwb).fullmatch(err.removeprefix("error: ").rstrip("\n")), err
