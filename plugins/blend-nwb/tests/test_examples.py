"""Every examples/nlb/<dataset>.yaml is a valid config whose data loads from a file of that layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from blend_nwb.nlb import SPECS

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "nlb"


@pytest.mark.parametrize("recipe", ["", "_cpu"])
@pytest.mark.parametrize("dataset", list(SPECS))
def test_example_config(nlb_files, dataset, recipe):
    from blend_core.api import apply_overrides, build_config, read_yaml
    from blend_core.api import load_plugins

    path = EXAMPLES / f"{dataset}{recipe}.yaml"
    if not path.exists():
        pytest.skip("examples/ not in this checkout")
    plugins = load_plugins(["nwb"])
    raw = apply_overrides(read_yaml(path), [f"data.path={nlb_files[dataset]}"])
    config = build_config(raw, plugins.registry, source=str(path))
    assert config.data.type == "nwb" and config.data.options.dataset == dataset
    source = plugins.registry.get("data source", "nwb").build(config.data.options)
    data = source.load()
    assert data.name.startswith(dataset)
    if recipe == "_cpu":  # the CPU recipe: the GPU example's data at NLB's 20 ms bins
        gpu = read_yaml(EXAMPLES / f"{dataset}.yaml")["data"]
        assert read_yaml(path)["data"] == {**gpu, "bin_ms": 20}
        assert data.bin_ms == 20


def test_cpu_recipe_runs_with_reference_rows(nlb_files, tmp_path):
    """One epoch of the CPU recipe end to end: metrics.json has every role and both reference rows
    (the synthetic writer's files know their true rates, so ``oracle`` is there)."""
    import json

    from blend_core.api import run_blend

    path = EXAMPLES / "mc_maze_cpu.yaml"
    if not path.exists():
        pytest.skip("examples/ not in this checkout")
    out = tmp_path / "run"
    assert run_blend(["run", str(path), "--out", str(out), "--set", f"data.path={nlb_files['mc_maze']}",
                      "--set", "train.max_epochs=1", "--set", "train.min_epochs=0", "--set", "train.device=cpu",
                      "--set", "train.progress=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"baseline", "teacher", "student", "smoothing", "oracle"} <= set(metrics)
    assert metrics["oracle"]["co-bps"] > metrics["baseline"]["co-bps"]


def test_generic_keys_from_yaml(nlb_files):
    from blend_core.api import build_config
    from blend_core.api import load_plugins

    plugins = load_plugins(["nwb"])
    raw = {"data": {"type": "nwb", "path": str(nlb_files["mc_maze"]), "window_ms": [-250, 450],
                    "align_field": "move_onset_time", "behavior": ["hand_vel"], "fp_ms": 200},
           "backbone": {"type": "ndt"}}
    config = build_config(raw, plugins.registry)
    assert config.data.options.window_ms == (-250, 450)
    data = plugins.registry.get("data source", "nwb").build(config.data.options).load()
    assert (data.window_bins, data.fp_bins) == (140, 40)


@pytest.mark.parametrize("dataset", list(SPECS))
def test_example_names_its_pinned_source(dataset):
    """Each example's comment and data.path agree with the one dataset table (DANDI id, version, asset)."""
    path = EXAMPLES / f"{dataset}.yaml"
    if not path.exists():
        pytest.skip("examples/ not in this checkout")
    spec = SPECS[dataset]
    text = path.read_text()
    assert f"DANDI:{spec.dandiset}/{spec.version}" in text
    assert f"blend fetch {dataset}" in text
    import yaml

    assert yaml.safe_load(text)["data"]["path"] == f"{spec.dandiset}/{spec.train_asset}"


def test_fetch_without_client_or_offline(monkeypatch, capsys, tmp_path):
    """No dandi client: one line, exit 2. A client that cannot reach DANDI: one line, exit 2. Nothing written."""
    import sys
    import types

    from blend_core.api import run_blend as main

    monkeypatch.setitem(sys.modules, "dandi", None)  # import fails like an uninstalled package
    monkeypatch.setitem(sys.modules, "dandi.dandiapi", None)
    assert main(["fetch", "mc_maze", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dandi client is not installed" in err[0] and "blend-nwb[fetch]" in err[0]

    class Offline:
        def __enter__(self):
            raise ConnectionError("Failed to resolve 'api.dandiarchive.org'\nmore detail")

        def __exit__(self, *exc):
            return False

    fake = types.ModuleType("dandi.dandiapi")
    fake.DandiAPIClient = Offline
    monkeypatch.setitem(sys.modules, "dandi", types.ModuleType("dandi"))
    monkeypatch.setitem(sys.modules, "dandi.dandiapi", fake)
    assert main(["fetch", "mc_maze", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DANDI:000128/0.220113.0400" in err[0] and "offline" in err[0]
    assert main(["fetch", "mc_mze"]) == 2
    assert "unknown NLB dataset" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_fetch_downloads_the_pinned_assets(monkeypatch, capsys, tmp_path):
    """With a (fake) client: exactly the table's dandiset, version and two assets; the train path is printed."""
    import sys
    import types

    from blend_core.api import run_blend as main

    calls = []

    class Asset:
        def __init__(self, path):
            self.path, self.size = path, 5

        def download(self, dest):
            calls.append(("download", self.path))
            Path(dest).write_bytes(b"12345")

    class Remote:
        def get_asset_by_path(self, path):
            return Asset(path)

    class Client:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def get_dandiset(self, ident, version):
            calls.append(("dandiset", ident, version))
            return Remote()

    fake = types.ModuleType("dandi.dandiapi")
    fake.DandiAPIClient = Client
    monkeypatch.setitem(sys.modules, "dandi", types.ModuleType("dandi"))
    monkeypatch.setitem(sys.modules, "dandi.dandiapi", fake)
    assert main(["fetch", "area2_bump", "--dir", str(tmp_path)]) == 0
    spec = SPECS["area2_bump"]
    assert calls == [("dandiset", spec.dandiset, spec.version), ("download", spec.train_asset),
                     ("download", spec.test_asset)]
    assert capsys.readouterr().out.strip() == str(tmp_path / spec.dandiset / spec.train_asset)
    calls.clear()
    assert main(["fetch", "area2_bump", "--dir", str(tmp_path)]) == 0  # complete files are kept
    assert [c[0] for c in calls] == ["dandiset"]
