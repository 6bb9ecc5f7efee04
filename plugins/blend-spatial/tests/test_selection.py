"""Honest selection for neuron identity: validation is leave-one-training-animal-out, never the held-out animal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import torch
import yaml

from blend_core.api import run_blend as main
from blend_spatial.anndata_source import AnnDataConfig, AnnDataSource
from blend_spatial.task import NeuronIdentityConfig, NeuronIdentityTask

HELD_OUT = "SB028"


def _shuffled_copy(tiny_dir: Path, out: Path) -> Path:
    """The sessions with the held-out animal's labels permuted among its neurons."""
    shutil.copytree(tiny_dir, out)
    rng = np.random.default_rng(5)
    for path in sorted(out.glob("*.h5ad")):
        a = ad.read_h5ad(path)
        if a.obs["subject"].iloc[0] != HELD_OUT:
            continue
        order = rng.permutation(a.n_obs)
        for key in ("ei_class", "subclass"):
            a.obs[key] = a.obs[key].to_numpy()[order]
        a.write_h5ad(path)
    return out


def test_validation_folds_are_the_training_animals(tiny_dir):
    data = AnnDataSource(AnnDataConfig(path=str(tiny_dir))).load()
    task = NeuronIdentityTask(NeuronIdentityConfig(window=16), data, torch.device("cpu"))
    folds = task._val_folds()
    assert (folds[data.split == "test"] == -1).all()  # the held-out animal is in no fold
    for k in np.unique(folds[folds >= 0]):  # one fold per training animal
        assert len(set(data.subjects[folds == k])) == 1
    assert len(np.unique(folds[folds >= 0])) == len(set(data.subjects[data.split == "train"])) == 2


def test_shuffled_held_out_labels_leave_checkpoints_and_validation_scores(tiny_run, tiny_dir, tmp_path):
    shuffled = _shuffled_copy(tiny_dir, tmp_path / "sessions")
    metrics = {}
    for name, path in (("plain", tiny_dir), ("shuffled", shuffled)):
        raw = tiny_run()
        raw["data"]["path"] = str(path)
        raw["train"].update(max_epochs=3, monitor="score")  # early stopping on leave-one-animal-out accuracy
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(raw))
        assert main(["-p", "spatial", "run", str(config), "--out", str(tmp_path / name)]) == 0
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["plain"]["val"] == metrics["shuffled"]["val"]
    assert {"student", "features", "features (logistic)"} <= set(metrics["plain"]["val"])
    assert metrics["plain"]["features"] != metrics["shuffled"]["features"]  # the shuffle reached the scored animal
    for role in ("teacher", "student", "baseline"):
        a, b = (torch.load(tmp_path / n / "checkpoints" / f"{role}.pt", weights_only=True) for n in ("plain", "shuffled"))
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), role
        assert "val_score" in a["history"][0]
