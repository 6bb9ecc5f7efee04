"""Reading sessions from .h5ad: the default layout, configurable keys, splits, and one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from blend_core.api import DataError
from blend_spatial.anndata_source import AnnDataConfig, AnnDataSource
from blend_spatial.synthetic import SyntheticSpatialConfig, generate


def load(path, **options):
    return AnnDataSource(AnnDataConfig(path=str(path), **options)).load()


def copy_sessions(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_synthetic_layout_matches_method_md(tiny_dir):
    adata = ad.read_h5ad(sorted(tiny_dir.glob("*.h5ad"))[0])
    assert {"ttype", "subclass", "ei_class", "subject", "session", "depth"} <= set(adata.obs.columns)
    assert {"spatial", "activity"} <= set(adata.obsm)
    assert "counts" in adata.layers and adata.n_vars == 12 and "Vip" in adata.var_names
    assert set(adata.uns["behavior"]) == {"running_speed", "pupil_size"}
    assert adata.obsm["activity"].shape == (40, 800) and adata.uns["frame_times"].shape == (800,)
    assert adata.obs["subclass"].isna().sum() == (adata.obs["ei_class"] == "EC").sum()


def test_synthetic_cell_types_follow_running_as_in_bugeon():
    adata = generate(SyntheticSpatialConfig(n_subjects=1, sessions_per_subject=1, neurons_per_session=100,
                                            n_frames=2000, seed=3))[0]
    run = adata.uns["behavior"]["running_speed"]
    corr = np.array([np.corrcoef(a, run)[0, 1] for a in adata.obsm["activity"]])
    sub = adata.obs["subclass"].astype(str).to_numpy()
    assert corr[sub == "Vip"].mean() > 0.3
    assert corr[sub == "Sst"].mean() < -0.2


def test_reads_a_directory_a_glob_and_a_file(tiny_dir):
    data = load(tiny_dir)
    assert [s.name for s in data.sessions] == [f"SB0{a}_s{b}" for a in (26, 27, 28) for b in (0, 1)]
    assert data.n_neurons == 240 and data.behavior_names == ("running_speed", "pupil_size")
    assert set(data.split[data.subjects == "SB028"]) == {"test"} and set(data.split[data.subjects != "SB028"]) == {"train"}
    assert load(f"{tiny_dir}/SB02[67]_*.h5ad").n_neurons == 160
    with pytest.raises(DataError, match="needs at least two subjects"):
        load(tiny_dir / "SB026_s0.h5ad")
    assert load(tiny_dir / "SB026_s0.h5ad", split="fraction").n_neurons == 40


def test_splits_by_session_and_by_fraction(tiny_dir):
    data = load(tiny_dir, split="session", test=("SB027_s1",))
    assert (data.split == "test").sum() == 40
    data = load(tiny_dir, split="fraction", test_fraction=0.25, seed=2)
    assert (data.split == "test").sum() == 60


def test_unknown_test_subject_names_the_available_ones(tiny_dir):
    with pytest.raises(DataError, match=r"data.test: unknown subject\(s\) 'SB999'; the data has: SB026, SB027, SB028"):
        load(tiny_dir, test=("SB999",))


def test_missing_key_names_it_and_lists_what_the_file_has(tiny_dir):
    with pytest.raises(DataError) as err:
        load(tiny_dir, activity="obsm/dff")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.endswith("obsm['dff'] not found (obsm/dff); the file has obsm keys: activity, spatial")
    with pytest.raises(DataError, match=r"uns\['behavior'\]\['speed'\] not found .*uns\['behavior'\] has: pupil_size, running_speed"):
        load(tiny_dir, behavior=("uns/behavior/speed",))
    with pytest.raises(DataError, match=r"obs\['cre'\] not found .*obs keys: ttype, subclass, ei_class, subject, session, depth"):
        load(tiny_dir, subclass="obs/cre")


def test_nan_activity_is_refused_with_the_neuron_named(tiny_dir, tmp_path):
    d = copy_sessions(tiny_dir, tmp_path / "s")
    path = d / "SB027_s0.h5ad"
    adata = ad.read_h5ad(path)
    adata.obsm["activity"][3, 10:12] = np.nan
    adata.write_h5ad(path)
    with pytest.raises(DataError, match=r"SB027_s0.h5ad: obsm/activity: 2 NaN/infinite value\(s\) in 1 neuron\(s\), first 'SB027_s0_n003'"):
        load(d)


@pytest.mark.parametrize("key, value", [("running_speed", np.inf), ("pupil_size", np.nan)])
def test_non_finite_behavior_is_refused_naming_file_and_key(tiny_dir, tmp_path, key, value):
    d = copy_sessions(tiny_dir, tmp_path / "s")
    path = d / "SB026_s1.h5ad"
    adata = ad.read_h5ad(path)
    adata.uns["behavior"][key][5] = value
    adata.write_h5ad(path)
    with pytest.raises(DataError, match=rf"^{path}: uns/behavior/{key}: 1 NaN/infinite value\(s\); expected finite"):
        load(d)


def test_write_dir_never_replaces_a_file_blend_did_not_write(tmp_path):
    from blend_spatial.synthetic import SyntheticSourceConfig, SyntheticSpatialSource

    small = dict(n_subjects=2, sessions_per_subject=1, neurons_per_session=30, n_frames=200, n_genes=10)
    out = tmp_path / "data"
    first = SyntheticSpatialSource(SyntheticSourceConfig(write_dir=str(out), **small)).load()
    again = SyntheticSpatialSource(SyntheticSourceConfig(write_dir=str(out), seed=1, **small)).load()  # ours: replaced
    assert not np.array_equal(first.sessions[0].activity, again.sessions[0].activity)
    user = out / "SB027_s0.h5ad"
    theirs = generate(SyntheticSpatialConfig(**small))[1]
    theirs.write_h5ad(user)  # the user's own file of the same name, without blend's mark
    before = user.read_bytes()
    with pytest.raises(DataError, match=rf"^{user}: exists and was not written by blend's synthetic generator; refusing"):
        SyntheticSpatialSource(SyntheticSourceConfig(write_dir=str(out), **small)).load()
    assert user.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["SB026_s0.h5ad", "SB027_s0.h5ad"]  # no temporary left behind


def test_unknown_classes_and_empty_classes(tiny_dir, tmp_path):
    d = copy_sessions(tiny_dir, tmp_path / "s")
    path = d / "SB026_s1.h5ad"
    adata = ad.read_h5ad(path)
    sub = adata.obs["subclass"].astype(object)
    sub.iloc[0] = "Chandelier"
    adata.obs["subclass"] = sub
    adata.write_h5ad(path)
    with pytest.raises(DataError, match=r"SB026_s1.h5ad: obs/subclass: unknown class\(es\) 'Chandelier'; expected one of Lamp5, Pvalb"
                                        r".*; to keep them set data.subclass_classes: \[Lamp5, Pvalb, Sncg, Sst, Vip, Chandelier\]"):
        load(d)
    # once the class is declared, a held-out animal without it leaves it empty in 'test'
    with pytest.raises(DataError, match=r"split leaves class\(es\) 'Chandelier' of obs\['subclass'\] with no labelled neuron in 'test'"
                                        r".*or drop the class: data.subclass_classes: \[Lamp5, Pvalb, Sncg, Sst, Vip\]$"):
        load(d, subclass_classes=("Lamp5", "Pvalb", "Sncg", "Sst", "Vip", "Chandelier"))


def test_unlabelled_neurons_are_kept_but_not_labelled(tiny_dir, tmp_path):
    d = copy_sessions(tiny_dir, tmp_path / "s")
    path = d / "SB028_s0.h5ad"
    adata = ad.read_h5ad(path)
    ei = adata.obs["ei_class"].astype(object)
    ei.iloc[:5] = "unassigned"
    ei.iloc[5:7] = np.nan
    adata.obs["ei_class"] = ei
    adata.write_h5ad(path)
    data = load(d)
    assert data.n_neurons == 240
    ei_labels = data.labels[0]
    assert ei_labels.name == "EC/IN" and (~ei_labels.labelled()).sum() == 7


def test_activity_and_behavior_from_a_separate_file(tiny_dir, tmp_path):
    """Recording keys read from an activity AnnData (neurons x frames, behavior in var), cells matched by name."""
    d = tmp_path / "s"
    d.mkdir()
    for src in sorted(tiny_dir.glob("*.h5ad")):
        cells = ad.read_h5ad(src)
        rec = ad.AnnData(X=cells.obsm["activity"][::-1].copy())  # rows in another order
        rec.obs_names = cells.obs_names[::-1]
        rec.var["running"] = cells.uns["behavior"]["running_speed"]
        rec.var["pupil"] = cells.uns["behavior"]["pupil_size"]
        rec.write_h5ad(d / f"{src.stem}.activity.h5ad")
        del cells.obsm["activity"], cells.uns["behavior"], cells.uns["frame_times"]
        cells.obs["mouse"] = cells.obs.pop("subject")
        cells.write_h5ad(d / f"{src.stem}.h5ad")
    data = load(f"{d}/SB*_s[01].h5ad", activity="X", activity_file="{stem}.activity.h5ad", frame_times="",
                behavior=("var/running", "var/pupil"), subject="obs/mouse")
    reference = load(tiny_dir)
    assert data.behavior_names == ("running", "pupil")
    for a, b in zip(data.sessions, reference.sessions):
        np.testing.assert_array_equal(a.activity, b.activity)
        np.testing.assert_array_equal(a.behavior, b.behavior)


def test_behavior_on_its_own_clock_is_interpolated(tiny_dir, tmp_path):
    d = copy_sessions(tiny_dir, tmp_path / "s")
    for path in d.glob("*.h5ad"):
        adata = ad.read_h5ad(path)
        t = adata.uns["frame_times"]
        fine = np.linspace(t[0], t[-1], 4 * (len(t) - 1) + 1)  # contains the frame times
        adata.uns["behavior_times"] = fine
        adata.uns["behavior"] = {k: np.interp(fine, t, v) for k, v in adata.uns["behavior"].items()}
        adata.write_h5ad(path)
    with pytest.raises(DataError, match="expected 800 values .one per frame., got 3197; set behavior_times"):
        load(d)
    data = load(d, behavior_times="uns/behavior_times")
    np.testing.assert_allclose(data.sessions[0].behavior, load(tiny_dir).sessions[0].behavior, atol=1e-4)
