"""``blend run --auto``: the search section, the space per task, the bar, and a real search on Ray Tune.

Ray's start-up is the slow part: the Ray tests share one Ray instance, and the search on a
2-node cluster is behind ``-m slow``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from blend_core.auto import AutoConfig, search_space, the_bar
from blend_core.cli import main


def test_a_bad_auto_section_is_one_line_naming_the_key(tiny_raw, tmp_path, capsys):
    raw = copy.deepcopy(tiny_raw)
    raw["auto"] = {"budget_minutes": 0, "trials": 2}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: auto.budget_minutes: expected a number > 0, got 0.0\n"
    raw["auto"] = {"trails": 2}
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--auto", "--out", str(tmp_path / "out")]) == 2
    assert "auto.trails: unknown key; did you mean 'trials'?" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_space_keeps_the_keys_the_components_have_and_takes_overrides(tiny_raw, builtin_plugins):
    space = search_space(tiny_raw, "neural", AutoConfig(), builtin_plugins.registry)
    assert {"train.lr", "backbone.d_model", "backbone.dropout_attention", "task.mask_ratio",
            "distillation.alpha", "distillation.type"} <= set(space)
    gru = copy.deepcopy(tiny_raw)
    gru["backbone"] = {"type": "gru", "hidden_dim": 16}
    space = search_space(gru, "neural", AutoConfig(search_space={"train.lr": [0.001, 0.002]}),
                         builtin_plugins.registry)
    assert "backbone.d_model" not in space and "backbone.dropout_attention" not in space  # an NDT's keys
    assert space["train.lr"] == [0.001, 0.002]


def test_the_bar_is_the_best_reference_row_on_the_validation_split():
    row = {"val/student/co-bps": 0.2, "val/baseline/co-bps": 0.3, "val/control_student/co-bps": 0.5,
           "val/smoothing/co-bps": 0.25, "val/oracle/co-bps": 0.9, "smoothing/co-bps": 0.8}
    assert the_bar(row, "student/co-bps") == ("smoothing", 0.25)  # not the oracle, not a role, not the test split
    assert the_bar(row, "student/vel R2") is None


def test_the_default_metric_per_task():
    from types import SimpleNamespace

    from blend_core.auto import default_metric

    assert default_metric("neural") == "student/co-bps"
    data = SimpleNamespace(labels=(SimpleNamespace(name="EC/IN"), SimpleNamespace(name="type")))
    assert default_metric("neuron_identity", data) == "student/accuracy (type)"


def test_address_needs_auto(tiny_config_file, capsys):
    assert main(["run", str(tiny_config_file), "--address", "localhost:6379"]) == 2
    assert "--address: only with --auto" in capsys.readouterr().err


# ------------------------------------------------------------------ on Ray Tune


def auto_raw(tiny: dict, **data) -> dict:
    raw = copy.deepcopy(tiny)
    raw["data"].update(data)
    raw["train"]["threads"] = 1
    # a small space; ASHA's first rung beyond the last report, so that no trial's fate depends on timing
    raw["auto"] = {"budget_minutes": 10, "trials": 2, "grace_period": 5, "seed": 1,
                   "search_space": {"train.lr": {"loguniform": [1.0e-3, 1.0e-2]}, "distillation.alpha": [0.3, 0.7]}}
    return raw


def _weights(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.name: torch.load(p, weights_only=True)["model"] for p in sorted(run_dir.glob("checkpoints/*.pt"))}


def test_auto_searches_then_runs_the_chosen_settings_and_never_reads_the_scored_spikes(
        shuffle_plugin, tiny_raw, tmp_path, capsys):
    """Two --auto runs on one Ray instance, the second on shuffled test spikes: same choice, same final weights."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    try:
        outs = {}
        for shuffle in (False, True):
            raw = auto_raw(tiny_raw, type=shuffle_plugin, shuffle=shuffle)
            raw["plugins"] = ["shuffled"]
            path = tmp_path / f"auto-{shuffle}.yaml"
            path.write_text(yaml.safe_dump(raw))
            outs[shuffle] = tmp_path / f"run-{shuffle}"
            assert main(["run", str(path), "--auto", "--out", str(outs[shuffle])]) == 0
    finally:
        ray.shutdown()
    printed = capsys.readouterr().out
    assert "auto: 2 of 2 trials finished" in printed and "the best reference, smoothing" in printed
    out = outs[False]
    summary = json.loads((out / "auto" / "auto.json").read_text())
    assert summary["metric"] == "val/student/co-bps" and summary["bar"]["row"] == "smoothing"
    assert summary["beaten"] == (summary["chosen"]["score"] > summary["bar"]["score"])
    rows = list(__import__("csv").DictReader((out / "auto" / "results.csv").open()))
    assert len(rows) == 2 and all(r["status"] == "finished" for r in rows)
    best = yaml.safe_load((out / "auto" / "best.yaml").read_text())
    assert "auto" not in best and "sweep" not in best and best["output"]["dir"] == str(out.resolve() / "final")
    assert best["distillation"]["alpha"] == summary["chosen"]["params"]["distillation.alpha"]
    assert best["train"]["monitor"] == "score"  # ASHA compared the trials on their validation score
    # honest: the shuffled run chose the same settings and trained the same final weights
    final = json.loads((out / "final" / "metrics.json").read_text())
    shuffled = json.loads((outs[True] / "final" / "metrics.json").read_text())
    assert final["student"]["co-bps"] != shuffled["student"]["co-bps"] and final["val"] == shuffled["val"]
    assert json.loads((outs[True] / "auto" / "auto.json").read_text())["chosen"] == summary["chosen"]
    a, b = _weights(out / "final"), _weights(outs[True] / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[f][k], b[f][k]) for f in a for k in a[f])
    # best.yaml validates and reruns to the same metrics
    assert main(["validate", str(out / "auto" / "best.yaml")]) == 0
    assert main(["run", str(out / "auto" / "best.yaml"), "--out", str(tmp_path / "rerun")]) == 0
    assert json.loads((tmp_path / "rerun" / "metrics.json").read_text()) == final
    # the report shows the search
    pytest.importorskip("matplotlib")
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "search" in page and "val/student/co-bps" in page and "the bar" in page


@pytest.mark.slow
def test_auto_on_a_two_node_ray_cluster(tiny_raw, tmp_path):
    """``--address``: the trials run on both nodes of a local 2-node cluster (one CPU each)."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        raw = auto_raw(tiny_raw)
        path = tmp_path / "auto.yaml"
        path.write_text(yaml.safe_dump(raw))
        out = tmp_path / "run"
        assert main(["run", str(path), "--auto", "--out", str(out), "--address", cluster.address]) == 0
    finally:
        cluster.shutdown()
    nodes = {json.loads(p.read_text())["node"] for p in out.glob("auto/trials/*/trial.json")}
    assert len(nodes) == 2, nodes
    assert (out / "final" / "metrics.json").exists()
