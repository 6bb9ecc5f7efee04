"""``blend sweep``: the sweep section's validation, the trial plan, teacher sharing, and a real Ray Tune sweep.

The Ray tests share one sweep (Ray's start-up is the slow part): it is started in a
subprocess, interrupted with SIGINT once a trial has finished, and resumed here.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from blend_core.cli import main
from blend_core.errors import BlendError, ConfigError
from blend_core.sweep import parse_sweep, plan, set_key, trial_params

ROLES = ("teacher", "student", "baseline")
NLB = ("co-bps", "vel R2", "psth R2", "fp-bps")


def sweep_raw(tiny: dict, **section) -> dict:
    raw = copy.deepcopy(tiny)
    raw["train"]["threads"] = 1
    raw["sweep"] = {"params": {"distillation.alpha": [0.3, 0.7], "distillation.type": ["correlation", "hard"]},
                    **section}
    return raw


# ------------------------------------------------------------------ without Ray

def test_grid_is_the_product_in_order(tiny_raw, builtin_plugins):
    sweep = parse_sweep(sweep_raw(tiny_raw), builtin_plugins.registry)
    assert trial_params(sweep) == [
        {"distillation.alpha": 0.3, "distillation.type": "correlation"},
        {"distillation.alpha": 0.3, "distillation.type": "hard"},
        {"distillation.alpha": 0.7, "distillation.type": "correlation"},
        {"distillation.alpha": 0.7, "distillation.type": "hard"},
    ]


def test_random_draws_are_seeded_and_in_range(tiny_raw, builtin_plugins):
    raw = sweep_raw(tiny_raw, method="random", num_samples=20, seed=3)
    raw["sweep"]["params"] = {"train.lr": {"loguniform": [1e-4, 1e-2]}, "train.batch_size": {"randint": [8, 17]},
                              "distillation.type": ["hard", "soft"]}
    sweep = parse_sweep(raw, builtin_plugins.registry)
    draws = trial_params(sweep)
    assert draws == trial_params(parse_sweep(raw, builtin_plugins.registry))  # same seed, same trials
    assert len(draws) == 20
    assert all(1e-4 <= d["train.lr"] <= 1e-2 and 8 <= d["train.batch_size"] <= 16 for d in draws)
    assert {d["distillation.type"] for d in draws} == {"hard", "soft"}
    raw["sweep"]["seed"] = 4
    assert trial_params(parse_sweep(raw, builtin_plugins.registry)) != draws


def test_grid_axes_with_a_sampled_key_repeat(tiny_raw, builtin_plugins):
    raw = sweep_raw(tiny_raw, num_samples=2)
    raw["sweep"]["params"] = {"distillation.alpha": [0.3, 0.7], "train.lr": {"uniform": [1e-3, 2e-3]}}
    draws = trial_params(parse_sweep(raw, builtin_plugins.registry))
    assert [d["distillation.alpha"] for d in draws] == [0.3, 0.7, 0.3, 0.7]
    assert len({d["train.lr"] for d in draws}) == 4


def test_teacher_and_baseline_are_shared_across_student_side_keys(tiny_raw, builtin_plugins):
    raw = sweep_raw(tiny_raw)
    raw["sweep"]["params"]["train.lr"] = [1e-3, 2e-3]
    trials = plan(parse_sweep(raw, builtin_plugins.registry), builtin_plugins.registry)
    assert len(trials) == 8
    teachers = {t["shared"]["teacher"] for t in trials}
    by_lr = {lr: {t["shared"]["teacher"] for t in trials if t["params"]["train.lr"] == lr} for lr in (1e-3, 2e-3)}
    assert len(teachers) == 2 and all(len(v) == 1 for v in by_lr.values())  # one teacher per lr
    raw["sweep"]["params"] = {"privileged.hidden_dim": [4, 8]}
    trials = plan(parse_sweep(raw, builtin_plugins.registry), builtin_plugins.registry)
    # the teacher sees the encoder: two teachers, each used by one trial, so each is trained in its trial
    # (under Tune's scheduler and budget) rather than shared
    assert all("teacher" not in t["shared"] for t in trials)
    assert len({t["shared"]["baseline"] for t in trials}) == 1  # the baseline does not: trained once, shared


def test_bad_sweep_sections_name_the_key(tiny_raw, builtin_plugins, tmp_path, capsys):
    raw = sweep_raw(tiny_raw, mode="maxx", metric="co-bps")
    raw["sweep"]["params"] = {"distilation.alpha": [0.5], "train.lr": {"loguniform": [0, 1e-2]},
                              "distillation.alpha": [0.5, 2.0], "train.max_epochs": {"gaussian": [1, 2]}}
    with pytest.raises(ConfigError) as err:
        parse_sweep(raw, builtin_plugins.registry, "s.yaml")
    lines = str(err.value).splitlines()
    assert "s.yaml: sweep.mode: expected one of 'max', 'min'" in lines
    assert any(line.startswith("s.yaml: sweep.metric: expected ROLE/METRIC") for line in lines)
    assert any(line.startswith("s.yaml: sweep.params.distilation.alpha=0.5: distilation: unknown key") for line in lines)
    assert "s.yaml: sweep.params.train.lr.loguniform: expected low > 0, got 0" in lines
    assert any(line.startswith("s.yaml: sweep.params.distillation.alpha=2.0: distillation.alpha") for line in lines)
    assert any(line.startswith("s.yaml: sweep.params.train.max_epochs: expected a list of values or one of")
               for line in lines)
    assert not any("alpha=0.5: " in line and line.startswith("s.yaml: sweep.params.distillation") for line in lines)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 2  # blend validate checks the sweep section too
    assert "sweep.mode" in capsys.readouterr().err


def test_set_key_refuses_a_key_below_a_value(tiny_raw):
    raw = set_key(tiny_raw, "train.lr", 0.1)
    assert raw["train"]["lr"] == 0.1 and "lr" not in tiny_raw["train"]  # a copy
    with pytest.raises(BlendError, match="sweep.params.train.lr.x: train.lr is not a section"):
        set_key(raw, "train.lr.x", 1)


def test_without_ray_one_line_says_how_to_install(tiny_raw, tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep_raw(tiny_raw)))
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", str(path), "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert err == "error: blend sweep needs Ray Tune: pip install 'blend-core[sweep]' (or: pip install 'ray[tune]>=2.9')\n"
    assert not (tmp_path / "sw").exists()


def test_collect_marks_stopped_and_failed_trials(tiny_raw, builtin_plugins, tmp_path):
    from blend_core.sweep import best_row, collect

    sweep = parse_sweep(sweep_raw(tiny_raw), builtin_plugins.registry)
    trials = plan(sweep, builtin_plugins.registry)
    done = tmp_path / "trials" / trials[0]["id"]
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"student": {"co-bps": 0.1, "confusion": [[1]]}}))
    state = {trials[1]["id"]: {"error": "ValueError: boom", "finished": True},
             trials[2]["id"]: {"reports": 1, "val_loss": 0.5, "finished": True}}
    rows = collect(sweep, trials, tmp_path, state)
    assert [r["status"] for r in rows] == ["finished", "error: ValueError: boom", "stopped early", "pending"]
    assert rows[0]["student/co-bps"] == 0.1 and "student/confusion" not in rows[0]
    assert best_row(rows, "student/co-bps", "max")["trial"] == trials[0]["id"]


# ------------------------------------------------------------------ on Ray Tune

@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """A 4-trial sweep, SIGINT'd in a subprocess after its first trial, then resumed in this process."""
    pytest.importorskip("ray.tune")
    root = tmp_path_factory.mktemp("sweep")
    spec = importlib.util.spec_from_file_location("_tiny_conftest", Path(__file__).with_name("conftest.py"))
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)  # the shared TINY config (fixtures are function-scoped)
    TINY = conftest.TINY

    # ASHA is on, with its first rung (grace_period 3) beyond the last report (2 epochs): it sees every
    # report but stops no trial, so that all four finish whatever order they run in
    # one trial at a time (max_concurrent 1), so that trials are still pending when SIGINT lands
    raw = sweep_raw(TINY, scheduler="asha", grace_period=3, metric="student/vel R2", resources={"cpu": 1},
                    max_concurrent=1)
    config = root / "sweep.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = root / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["BLEND_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "blend_core.cli", "sweep", str(config), "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    deadline = time.monotonic() + 600
    while not list(out.glob("trials/*/metrics.json")):
        assert proc.poll() is None, f"sweep ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "no trial finished in 10 minutes"
        time.sleep(0.5)
    first_done = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/metrics.json")}
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    interrupted = {"code": proc.returncode, "stderr": stderr, "rows": _read_csv(out / "results.csv")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLEND_DISABLE_PLUGIN_AUTOLOAD", "1")
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.chdir(root)
        code = main(["sweep", str(config), "--out", str(out), "--resume"])
    return {"out": out, "code": code, "interrupted": interrupted, "first_done": first_done}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_interrupted_sweep_resumes_without_redoing_finished_trials(resumed_sweep):
    interrupted = resumed_sweep["interrupted"]
    assert interrupted["code"] == 130, interrupted["stderr"][-2000:]
    last = interrupted["stderr"].strip().splitlines()[-1]  # the exact command that continues the sweep
    assert last.startswith("interrupted; continue with: blend sweep ") and last.endswith(" --resume"), last
    statuses = [r["status"] for r in interrupted["rows"]]
    assert "finished" in statuses and any(s in ("interrupted", "pending") for s in statuses), statuses
    assert resumed_sweep["code"] == 0
    out = resumed_sweep["out"]
    for trial, mtime in resumed_sweep["first_done"].items():  # finished before the interrupt: not run again
        assert (out / "trials" / trial / "metrics.json").stat().st_mtime_ns == mtime


def test_sweep_results_table_has_every_trial_and_role(resumed_sweep):
    out = resumed_sweep["out"]
    rows = _read_csv(out / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "finished" for r in rows)
    assert [(float(r["distillation.alpha"]), r["distillation.type"]) for r in rows] == [
        (0.3, "correlation"), (0.3, "hard"), (0.7, "correlation"), (0.7, "hard")]
    for row in rows:
        for role in ROLES:
            for name in NLB:
                assert math.isfinite(float(row[f"{role}/{name}"])), (role, name)
        assert math.isfinite(float(row["last val_loss"]))  # the student's epochs reached Tune through the hook
    # one teacher for all four trials: trained once in shared/, copied into each trial
    assert len(list((out / "shared").glob("teacher-*/checkpoints/teacher.pt"))) == 1
    teachers = {float(r["teacher/co-bps"]) for r in rows}
    assert len(teachers) == 1
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(out / "results.parquet").num_rows == 4


def test_best_config_is_runnable(resumed_sweep, capsys):
    out = resumed_sweep["out"]
    rows = _read_csv(out / "results.csv")
    best = max(rows, key=lambda r: float(r["val/student/vel R2"]))  # chosen on the validation split's score
    saved = yaml.safe_load((out / "best.yaml").read_text())
    assert "sweep" not in saved
    assert saved["distillation"]["alpha"] == float(best["distillation.alpha"])
    assert saved["distillation"]["type"] == best["distillation.type"]
    assert main(["validate", str(out / "best.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_seeds_in_a_sweep_are_summarised_and_pick_the_best_configuration(tiny_raw, builtin_plugins, tmp_path):
    from blend_core.sweep import seed_summary, write_best

    raw = sweep_raw(tiny_raw)
    raw["sweep"]["params"] = {"distillation.alpha": [0.3, 0.7], "train.seed": [0, 1, 2]}
    raw["sweep"]["metric"] = "student/co-bps"
    sweep = parse_sweep(raw, builtin_plugins.registry)
    trials = plan(sweep, builtin_plugins.registry)
    rows = []
    for i, t in enumerate(trials):  # alpha 0.7 is better on average, though alpha 0.3 has the best single trial
        alpha, seed = t["params"]["distillation.alpha"], t["params"]["train.seed"]
        student = {0.3: [0.5, 0.0, 0.0], 0.7: [0.2, 0.3, 0.25]}[alpha][seed]
        rows.append({"trial": t["id"], "status": "finished", **t["params"], "val/student/co-bps": student,
                     "student/co-bps": student, "baseline/co-bps": 0.1 * seed})
    groups = seed_summary(rows, sweep)
    assert [g["distillation.alpha"] for g in groups] == [0.3, 0.7] and all(g["seeds"] == 3 for g in groups)
    g = groups[1]
    assert g["student/co-bps mean"] == pytest.approx(0.25) and g["student/co-bps sd"] == pytest.approx(0.05)
    diffs = [0.2, 0.2, 0.05]  # student - baseline per seed
    assert g["student - baseline/co-bps mean"] == pytest.approx(sum(diffs) / 3)
    assert g["student - baseline/co-bps ci_low"] < g["student - baseline/co-bps mean"] < g["student - baseline/co-bps ci_high"]
    path = write_best(sweep, rows, tmp_path)
    saved = yaml.safe_load(path.read_text())
    assert saved["distillation"]["alpha"] == 0.7 and "seed" not in saved["train"]
    assert "mean ± s.d. over 3 seeds" in path.read_text().splitlines()[0]


def test_report_of_the_sweep(resumed_sweep, capsys):
    pytest.importorskip("matplotlib")
    import re

    import matplotlib.image as mpimg

    out = resumed_sweep["out"]
    assert main(["report", str(out)]) == 0
    page = out / "report" / "index.html"
    refs = re.findall(r"src='([^']+)'", page.read_text())
    assert all((page.parent / r).is_file() for r in refs)
    best = max(_read_csv(out / "results.csv"), key=lambda r: float(r["val/student/vel R2"]))["trial"]
    figures = {"sweep_0", "sweep_1", *(f"best_trial_{best}_{n}" for n in
                                       ("learning_curves", "metrics", "behavior", "psth", "latents"))}
    assert {Path(r).stem for r in refs} == figures
    for name in figures:
        png = page.parent / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert mpimg.imread(png).shape[0] > 100


def test_resume_refuses_a_changed_sweep_and_an_existing_dir_needs_a_flag(tiny_raw, tmp_path, capsys):
    pytest.importorskip("ray.tune")
    from blend_core.rundir import write_marker

    out = tmp_path / "sw"
    out.mkdir()
    write_marker(out)
    raw = sweep_raw(tiny_raw)
    (out / "sweep.yaml").write_text(yaml.safe_dump(raw))
    raw["sweep"]["params"]["distillation.alpha"] = [0.3, 0.5]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(path), "--out", str(out)]) == 2  # Ray is never started for these
    assert "pass --overwrite to replace it or --resume to continue it" in capsys.readouterr().err
    assert main(["sweep", str(path), "--out", str(out), "--resume"]) == 2
    assert capsys.readouterr().err == (f"error: {out / 'sweep.yaml'}: config differs from the sweep being resumed; "
                                       "use a new --out\n")
