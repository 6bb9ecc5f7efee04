"""The report explains itself: references drawn apart from models, axes in ms and sensible,
baseline beside student, held-out neurons marked, honest sweep axes, run facts and warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("matplotlib")

from blend_core import report  # noqa: E402

METRICS = {"teacher": {"co-bps": 0.12, "vel R2": 0.97}, "student": {"co-bps": 0.02, "vel R2": 0.8},
           "baseline": {"co-bps": 0.01, "vel R2": 0.3}, "smoothing": {"co-bps": 0.035, "vel R2": 0.76},
           "oracle": {"co-bps": 0.14, "vel R2": 0.99}}


@pytest.fixture
def plt():
    return report._plt()


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(METRICS))
    (d / "config.yaml").write_text(yaml.safe_dump({"data": {"type": "synthetic"}, "backbone": {"type": "ndt"},
                                                   "train": {"lr": 1e-3, "max_epochs": 20, "warmup_steps": 1}}))
    (d / "run.json").write_text(json.dumps({"blend": "0.1.0", "created": "2026-12-06T21:00:00Z"}))
    (d / "provenance.json").write_text(json.dumps({"blend": "0.1.0", "torch": "2.13", "python": "3.11",
                                                   "git_commit": "abc123", "command": ["blend", "run", "c.yaml"]}))
    rows = ["role,epoch,train_loss,val_loss,lr"]
    for role, n in (("teacher", 12), ("student", 20), ("baseline", 20)):
        rows += [f"{role},{e},{50.0 if e == 0 else 1 + 1 / (e + 1)},{40.0 if e == 0 else 1 + 1 / (e + 1)},0.001"
                 for e in range(n)]
    (d / "history.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    psth = rng.random((3, 10, 2))
    np.savez(d / "report-data.npz", bin_ms=np.asarray(5.0), roles=np.asarray(["student", "baseline"]),
             psth_neurons=np.asarray([8, 9]), n_heldin=np.asarray(8), psth_true=psth,
             **{"psth_pred/student": psth + 0.1, "psth_pred/baseline": psth + 0.3},
             behavior_trials=np.asarray([0]), behavior_true=rng.random((1, 10, 2)),
             behavior_names=np.asarray(["vx", "vy"]), **{"behavior_pred/student": rng.random((1, 10, 2))})
    return d


def test_references_are_lines_not_bars_and_the_teachers_cell_is_hatched(plt):
    fig = report.draw_metrics(METRICS, None, 1)(plt)
    ax = fig.axes[0]  # co-bps
    assert len(ax.patches) == 3  # teacher, student, baseline: the references are not bars
    assert {0.035, 0.14} <= {line.get_ydata()[0] for line in ax.lines}
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["smoothing (reference)", "oracle (reference)"]
    assert fig.axes[1].patches[0].get_hatch() == "///"  # vel R2 of the teacher, who sees behavior
    plt.close(fig)


def test_learning_curves_are_labelled_and_not_scaled_by_epoch_zero(plt, run_dir):
    fig = report.draw_learning_curves(report.read_history(run_dir))(plt)
    for ax in fig.axes:
        assert ax.get_ylabel() and ax.get_xlabel() == "epoch"
        assert ax.get_ylim()[1] < 5  # the first epoch's 40-50 runs off the top
    plt.close(fig)


def test_psth_shows_student_and_baseline_in_ms_with_held_out_marked_and_a_legend(plt, run_dir):
    fig = report.draw_psth(run_dir)(plt)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["student: neuron 8 (held-out)", "student: neuron 9 (held-out)",
                      "baseline: neuron 8 (held-out)", "baseline: neuron 9 (held-out)"]
    assert fig.axes[-1].get_xlabel() == "time in trial (ms)"
    assert fig.axes[0].lines[0].get_xdata()[-1] == pytest.approx(47.5)  # bin centres of 5 ms bins
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == ["condition 0", "condition 1", "condition 2"]
    plt.close(fig)


def test_sweep_axis_does_not_magnify_a_tiny_difference(plt):
    rows = [{"status": "finished", "distillation.alpha": a, "student/co-bps": v}
            for a, v in ((0.3, 0.1000), (0.7, 0.1006))]
    fig = report.draw_sweep_key(rows, "distillation.alpha", "student/co-bps")(plt)
    low, high = fig.axes[0].get_ylim()
    assert high - low >= 0.01  # >= 10% of the values' size, not the 0.0006 between them
    plt.close(fig)


def test_the_page_has_warnings_run_facts_epochs_and_config(run_dir):
    page = report.write_report(run_dir).read_text()
    assert "<p class='warn'>below smoothing on the scored split: student (co-bps), baseline (co-bps, vel R2)" in page
    assert "student (best epoch 20 of 20), baseline (best epoch 20 of 20): ran out of epochs" in page
    assert "2026-12-06T21:00:00Z" in page and "abc123" in page and "blend run c.yaml" in page
    assert "12 of 20 (early-stopped)" in page and "20 of 20 (ran every epoch)" in page
    assert "<summary>resolved config</summary>" in page and "max_epochs: 20" in page
    assert "smoothing (reference)" in page
    assert page.index("warnings") < page.index("metrics")  # read before the numbers
