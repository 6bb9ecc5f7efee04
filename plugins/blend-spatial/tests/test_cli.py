"""``blend run`` / ``predict`` / ``plugins`` end to end through the installed entry point, and one-line errors."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from importlib.metadata import entry_points
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml

from blend_core.api import run_blend as main

pytestmark = pytest.mark.skipif(
    not any(ep.name == "spatial" for ep in entry_points(group="blend")),
    reason="blend-spatial is not installed (pip install -e plugins/blend-spatial --no-deps)",
)


def blend(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["-p", "spatial", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.h5ad"))}


@pytest.fixture(scope="module")
def finished_run(tiny_dir, tiny_run, tmp_path_factory):
    """One teacher/student/baseline run on the tiny sessions, shared by the checks below."""
    tmp = tmp_path_factory.mktemp("run")
    raw = tiny_run()
    before = digest(tiny_dir)
    out = tmp / "out"
    assert main(["-p", "spatial", "run", str(write_config(tmp, raw)), "--out", str(out)]) == 0
    return out, before


def test_student_beats_chance_on_the_held_out_animal(finished_run):
    out, _ = finished_run
    metrics = json.loads((out / "metrics.json").read_text())
    # the roles, and the reference rows of hand-made activity statistics (without and with behavior;
    # the default classifier is auto, not logistic, so the statistics are also scored under logistic regression)
    rows = {"baseline", "teacher", "student", "features", "features+behavior", "features (logistic)"}
    assert set(metrics.pop("val")) == rows  # the same rows, leave-one-training-animal-out: what selection reads
    assert set(metrics) == rows
    for role, m in metrics.items():
        for name in ("accuracy (EC/IN)", "macro F1 (EC/IN)", "accuracy (subclass)", "macro F1 (subclass)"):
            assert 0 <= m[name] <= 1, (role, name)
        assert m["classes (subclass)"] == ["Lamp5", "Pvalb", "Sncg", "Sst", "Vip"]
        assert sum(m["support (EC/IN)"]) == 80  # the held-out animal SB028: 2 sessions x 40 neurons
    student = metrics["student"]
    assert student["macro F1 (EC/IN)"] > 0.7  # chance: 0.5
    assert student["accuracy (subclass)"] > 0.4  # chance: 0.2 (balanced subclasses)


def test_results_go_into_new_h5ad_files_that_scanpy_reads(finished_run, tiny_dir):
    import scanpy as sc

    out, before = finished_run
    assert digest(tiny_dir) == before  # inputs untouched
    files = sorted((out / "h5ad").glob("*.blend.h5ad"))
    assert [f.name for f in files] == [f"SB0{a}_s{b}.blend.h5ad" for a in (26, 27, 28) for b in (0, 1)]
    adata = sc.read_h5ad(files[-1])
    assert adata.obsm["X_blend"].shape == (40, 8)
    assert {"X_blend_teacher", "X_blend_baseline", "activity", "spatial"} <= set(adata.obsm)
    assert set(adata.obs["blend_split"]) == {"test"}
    assert set(adata.obs["blend_subclass"].cat.categories) == {"Lamp5", "Pvalb", "Sncg", "Sst", "Vip"}
    probs = adata.obs[[f"blend_ei_class_prob_{c}" for c in ("EC", "IN")]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.slow  # scanpy's neighbors and UMAP compile with numba on first use (~30 s)
def test_umap_example_writes_a_png(finished_run, tmp_path):
    import importlib.util

    script = Path(__file__).resolve().parents[3] / "examples" / "spatial" / "umap.py"
    spec = importlib.util.spec_from_file_location("umap_example", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = module.main([str(finished_run[0]), "--out", str(tmp_path / "umap.png")])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_writes_the_students_h5ad(finished_run, capsys, tmp_path):
    out, _ = finished_run
    code, stdout, _ = blend(capsys, "predict", str(out), "--out", str(tmp_path / "pred"))
    assert code == 0
    written = [Path(line) for line in stdout.split()]
    assert len(written) == 6 and all(p.suffixes == [".blend", ".h5ad"] for p in written)
    reread = ad.read_h5ad(written[0])
    original = ad.read_h5ad(out / "h5ad" / written[0].name)
    np.testing.assert_allclose(reread.obsm["X_blend"], original.obsm["X_blend"], atol=1e-5)


def test_concat_fusion_and_the_synthetic_source_run(tmp_path, capsys):
    raw = {
        "data": {"type": "spatial_synthetic", "n_subjects": 2, "sessions_per_subject": 1, "neurons_per_session": 30,
                 "n_frames": 200, "inhibitory_fraction": 0.5},
        "task": {"type": "neuron_identity", "window": 8, "windows_per_neuron": 2},
        "backbone": {"type": "neuprint", "embedding_dim": 4, "hidden_dim": 8},
        "privileged": {"type": "identity", "fusion": "concat"},
        "distillation": {"type": "hard"},
        "train": {"max_epochs": 1, "batch_size": 64, "progress": False, "device": "cpu"},
    }
    code, stdout, err = blend(capsys, "run", str(write_config(tmp_path, raw)), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "accuracy (subclass)" in stdout
    assert len(list((tmp_path / "o" / "h5ad").glob("*.blend.h5ad"))) == 2


def test_plugins_lists_the_spatial_components(capsys):
    code, stdout, _ = blend(capsys, "plugins")
    assert code == 0
    assert re.search(r"^spatial  blend-spatial[ -]0\.1\.0", stdout, re.M)
    for name in ("anndata", "spatial_synthetic", "neuron_identity", "neuprint"):
        assert f" {name} " in stdout


def bad_copy(tiny_dir: Path, tmp_path: Path, edit) -> Path:
    d = tmp_path / "bad"
    shutil.copytree(tiny_dir, d)
    path = d / "SB027_s1.h5ad"
    adata = ad.read_h5ad(path)
    edit(adata)
    adata.write_h5ad(path)
    return d


def set_nan(adata):
    adata.obsm["activity"][0, 0] = np.nan


def unknown_class(adata):
    ei = adata.obs["ei_class"].astype(object)
    ei.iloc[2] = "GLIA"
    adata.obs["ei_class"] = ei


@pytest.mark.parametrize("edit, options, expected", [
    (None, {"activity": "layers/dff"},
     "SB026_s0.h5ad: layers['dff'] not found (layers/dff); the file has layers keys: counts"),
    (set_nan, {}, "SB027_s1.h5ad: obsm/activity: 1 NaN/infinite value(s) in 1 neuron(s), first 'SB027_s1_n000'"),
    (unknown_class, {}, "SB027_s1.h5ad: obs/ei_class: unknown class(es) 'GLIA'; expected one of EC, IN (or a missing value); "
     "to keep them set data.ei_classes: [EC, IN, GLIA]"),
    (None, {"test": ["SB026"], "subclass_classes": ["Lamp5", "Pvalb", "Sncg", "Sst", "Vip", "Meis2"]},
     "split leaves class(es) 'Meis2' of obs['subclass'] with no labelled neuron in 'train'"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_dir, tiny_run, tmp_path, capsys, edit, options, expected):
    raw = tiny_run()
    raw["data"]["path"] = str(bad_copy(tiny_dir, tmp_path, edit) if edit else tiny_dir)
    raw["data"].update(options)
    code, _, err = blend(capsys, "run", str(write_config(tmp_path, raw)), "--out", str(tmp_path / "o"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err
