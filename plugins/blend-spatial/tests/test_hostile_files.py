"""AnnData sessions that would train to nonsense or exhaust memory are refused at load, in one line (issue 19)."""

from __future__ import annotations

import shutil

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from blend_core.api import DataError
from blend_spatial.anndata_source import AnnDataConfig, AnnDataSource


def load(path, **options):
    return AnnDataSource(AnnDataConfig(path=str(path), **options)).load()


def _edit(tiny_dir, tmp_path, change):
    d = tmp_path / "s"
    shutil.copytree(tiny_dir, d)
    path = d / "SB026_s1.h5ad"
    adata = ad.read_h5ad(path)
    change(adata)
    adata.write_h5ad(path)
    return d, path


def _refused(d, **options) -> str:
    with pytest.raises(DataError) as exc:
        load(d, **options)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_all_zero_activity(tiny_dir, tmp_path):
    def zero(adata):
        adata.obsm["activity"] = np.zeros_like(adata.obsm["activity"])

    d, path = _edit(tiny_dir, tmp_path, zero)
    assert _refused(d) == f"{path}: obsm/activity: every value is 0; expected recorded activity (is data.activity the right key?)"


def test_sparse_activity_is_sized_before_it_is_made_dense(tiny_dir, tmp_path):
    import resource

    def huge(adata):
        adata.obsm["activity"] = sp.csr_matrix((adata.n_obs, 10**9), dtype=np.float32)

    d, path = _edit(tiny_dir, tmp_path, huge)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert _refused(d) == (f"{path}: obsm/activity: a sparse 40 x 1000000000 matrix would take 149 GiB dense; "
                           "blend reads at most 8 GiB per array")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_small_sparse_activity_is_read(tiny_dir, tmp_path):
    def sparse(adata):
        adata.obsm["activity"] = sp.csr_matrix(adata.obsm["activity"])

    d, _ = _edit(tiny_dir, tmp_path, sparse)
    assert load(d).n_neurons == 240


def test_a_single_class_is_refused(tiny_dir):
    """blend's own advice for a class missing from one split must not lead to a one-class classifier."""
    msg = _refused(tiny_dir, ei_classes=("EC",), unlabelled=("", "nan", "IN"))
    assert "data.ei_classes: [EC] leaves one class of obs['ei_class']; classifying needs at least two" in msg


def test_advice_never_leaves_one_class(tiny_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(tiny_dir, d)
    for path in d.glob("SB028_*.h5ad"):  # the held-out animal loses its IN labels
        adata = ad.read_h5ad(path)
        ei = adata.obs["ei_class"].astype(object)
        ei[ei == "IN"] = "unassigned"
        adata.obs["ei_class"] = ei
        adata.write_h5ad(path)
    msg = _refused(d, subclass="")
    assert "split leaves class(es) 'IN' of obs['ei_class'] with no labelled neuron in 'test'" in msg
    assert "drop the class" not in msg


def test_an_external_link_in_an_h5ad_is_refused(tiny_dir, tmp_path):
    """An .h5ad may not make blend read another HDF5 file on the host (issue 19, item 5)."""
    import h5py

    d = tmp_path / "s"
    shutil.copytree(tiny_dir, d)
    path = d / "SB026_s1.h5ad"
    elsewhere = tmp_path / "elsewhere.h5"
    with h5py.File(elsewhere, "w") as f:
        f["secret"] = np.arange(3.0)
    with h5py.File(path, "a") as f:
        f["uns/planted"] = h5py.ExternalLink(str(elsewhere), "/secret")
    msg = _refused(d)
    assert str(path) in msg and "uns/planted" in msg and "external link" in msg


def test_an_impossible_declared_size_in_an_h5ad_is_refused(tiny_dir, tmp_path):
    """A dense array declared far larger than what the file stores is refused before anndata reads it."""
    import h5py

    d = tmp_path / "s"
    shutil.copytree(tiny_dir, d)
    path = d / "SB026_s1.h5ad"
    with h5py.File(path, "a") as f:
        f.create_dataset("uns/huge", shape=(1 << 28,), dtype="f8", compression="gzip", chunks=(1 << 20,))
    msg = _refused(d)
    assert str(path) in msg and "uns/huge" in msg and "declares shape" in msg
