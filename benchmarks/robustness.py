"""Run the shipped recipes on the robustness suite's held-out settings and print a table per setting.

Neural settings (``blend_nwb.robustness.SETTINGS``): each replicate ``i`` is its own file,
written with generator seed ``--seed-base + i`` (seeds no one tuned on), and one ``blend run``
of the layout's shipped CPU recipe (``examples/nlb/<layout>_cpu.yaml``) with training seed
``i``; ``--controls`` adds the self-distillation control. Identity settings
(``blend_spatial.robustness.SETTINGS``): the same with ``examples/spatial/identity.yaml``,
its data section pointed at the written ``.h5ad`` files (held-out animal: the last).

Every number is read back from the runs' ``metrics.json``; a table gives, per row, the mean
over replicates and the t-based 95% interval, then paired differences (same replicate).
Replicates already finished are not rerun, so an interrupted sweep resumes.

    python benchmarks/robustness.py neural runs/robust --settings hidden-200 --replicates 3 --max-epochs 300
    python benchmarks/robustness.py identity runs/robust --settings bugeon-like --replicates 3
    python benchmarks/robustness.py table runs/robust            # the tables again, from disk
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
NEURAL_METRICS = ("co-bps", "vel R2", "fp-bps")  # psth R2: pseudo-trials have no conditions
IDENTITY_METRICS = ("accuracy (EC/IN)", "accuracy (subclass)", "macro F1 (subclass)")
NEURAL_DIFFS = (("baseline", "smoothing"), ("student", "smoothing"), ("student", "baseline"),
                ("student", "control_student"), ("control_student", "baseline"))
IDENTITY_DIFFS = (("baseline", "best features"), ("student", "best features"), ("student", "baseline"),
                  ("student", "control_student"))


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    paths = [ROOT, ROOT / "plugins/blend-nwb/src", ROOT / "plugins/blend-spatial/src"]
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    return env


def _blend_run(config: Path, out: Path, sets: list[str], log: Path) -> float:
    """One ``blend run``; returns its wall time. A failed run stops the sweep with its log's tail.

    A run directory left with checkpoints by an interrupted sweep is resumed (``--resume``: finished
    roles are loaded, not retrained), so that restarting the sweep does not repeat training.
    """
    resume = (out / "checkpoints").exists()
    cmd = [sys.executable, "-m", "blend_core.cli", "run", str(config), "--out", str(out),
           "--resume" if resume else "--overwrite"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    with open(log, "a" if resume else "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)
    if rc != 0:
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"error: {' '.join(cmd)} failed (exit {rc}); see {log}:\n" + "\n".join(tail))
    return time.time() - t0


def _convergence(run_dir: Path) -> dict[str, list[int]]:
    """Per role: [best epoch, epochs run] from the final checkpoints."""
    import torch

    out = {}
    for ckpt in sorted((run_dir / "checkpoints").glob("*.pt")):
        if ckpt.stem.endswith("-last"):
            continue
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        out[ckpt.stem] = [int(state["best_epoch"]), int(state["epochs_run"])]
    return out


def _record(rep_dir: Path, run_dir: Path, wall: float, meta: dict[str, Any]) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rec = {"metrics": metrics, "wall_s": wall, "convergence": _convergence(run_dir), **meta}
    (rep_dir / "record.json").write_text(json.dumps(rec, indent=1, default=str))


def run_neural(out: Path, settings: list[str], replicates: range, seed_base: int, max_epochs: int,
               controls: bool) -> None:
    from blend_nwb.robustness import SETTINGS, write_setting

    for name in settings:
        layout = SETTINGS[name].dataset
        recipe = ROOT / "examples/nlb" / f"{layout}_cpu.yaml"
        for i in replicates:
            rep = out / "neural" / name / f"r{i}"
            if (rep / "record.json").exists():
                continue
            rep.mkdir(parents=True, exist_ok=True)
            path = rep / "data.nwb"
            if not path.exists():  # kept by an interrupted run: resuming checks the input's digest
                write_setting(name, path, seed_base + i)
            sets = [f"data.path={path}", f"train.seed={i}", f"train.max_epochs={max_epochs}"]
            if controls:
                sets.append("controls=[self]")
            wall = _blend_run(recipe, rep / "run", sets, rep / "log.txt")
            _record(rep, rep / "run", wall, {"recipe": str(recipe.relative_to(ROOT)), "sets": sets,
                                             "generator_seed": seed_base + i, "training_seed": i})
            (rep / "data.nwb").unlink()  # tens of MB each; rewritten identically from the seed
            print(f"{name} r{i}: {wall:.0f} s", flush=True)


def run_identity(out: Path, settings: list[str], replicates: range, seed_base: int, extra_sets: list[str],
                 controls: bool) -> None:
    from blend_spatial.robustness import SETTINGS, write_setting

    base = yaml.safe_load((ROOT / "examples/spatial/identity.yaml").read_text())
    for name in settings:
        for i in replicates:
            rep = out / "identity" / name / f"r{i}"
            if (rep / "record.json").exists():
                continue
            rep.mkdir(parents=True, exist_ok=True)
            paths = sorted((rep / "data").glob("*.h5ad")) or write_setting(name, rep / "data", seed_base + i)
            subjects = sorted({p.stem.split("_")[0] for p in paths})
            config = dict(base)
            config["data"] = {"type": "anndata", "path": str(rep / "data" / "*.h5ad"), "split": "subject",
                              "test": [subjects[-1]]}
            if not controls:
                config.pop("controls", None)
            config["output"] = {"dir": str(rep / "run")}
            cfg_path = rep / "config.yaml"
            cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
            sets = [f"train.seed={i}", *extra_sets]
            wall = _blend_run(cfg_path, rep / "run", sets, rep / "log.txt")
            _record(rep, rep / "run", wall, {"recipe": "examples/spatial/identity.yaml", "sets": sets,
                                             "generator_seed": seed_base + i, "training_seed": i,
                                             "held_out": subjects[-1]})
            print(f"{name} r{i}: {wall:.0f} s", flush=True)


# ----------------------------------------------------------------- tables

def _rows(records: list[dict[str, Any]], kind: str) -> dict[str, dict[str, list[float]]]:
    rows: dict[str, dict[str, list[float]]] = {}
    metrics = NEURAL_METRICS if kind == "neural" else IDENTITY_METRICS
    for rec in records:
        m = rec["metrics"]
        if kind == "identity":  # the bar: per replicate, the better of the two activity-statistics rows
            feats = [r for r in ("features", "features (logistic)") if r in m]
            m = {**m, "best features": {k: max(m[r][k] for r in feats) for k in metrics}}
        for role, values in m.items():
            if not isinstance(values, dict):
                continue
            for k in metrics:
                if isinstance(values.get(k), (int, float)):
                    rows.setdefault(role, {}).setdefault(k, []).append(float(values[k]))
    return rows


def _cell(values: list[float]) -> str:
    from blend_core.stats import t_interval

    import numpy as np

    if len(values) < 2:
        return f"{values[0]:.3f}" if values else ""
    lo, hi = t_interval(values)
    return f"{np.mean(values):.3f} [{lo:.3f}, {hi:.3f}]"


def _diff(a: list[float], b: list[float]) -> str:
    from blend_core.stats import paired_difference

    d = paired_difference(a, b)
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


ORDER = ("smoothing", "oracle", "features", "features (logistic)", "best features", "features+behavior",
         "baseline", "teacher", "student", "control_teacher", "control_student")


def table(setting_dir: Path, kind: str) -> str:
    records = [json.loads(p.read_text()) for p in sorted(setting_dir.glob("r*/record.json"))]
    if not records:
        return ""
    for rec, p in zip(records, sorted(setting_dir.glob("r*/record.json"))):
        if not rec.get("convergence") and (p.parent / "run/checkpoints").exists():
            rec["convergence"] = _convergence(p.parent / "run")
    metrics = NEURAL_METRICS if kind == "neural" else IDENTITY_METRICS
    rows = _rows(records, kind)
    n = len(records)
    head = [f"### {setting_dir.name} ({n} replicate{'s' * (n != 1)}: generator seeds "
            f"{', '.join(str(r['generator_seed']) for r in records)}, training seeds "
            f"{', '.join(str(r['training_seed']) for r in records)})", "",
            "| row | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for role in sorted(rows, key=lambda r: ORDER.index(r) if r in ORDER else len(ORDER)):
        cells = [_cell(rows[role].get(k, [])) for k in metrics]
        if role == "teacher" and kind == "neural":
            cells[1] = f"({cells[1]})"  # given the privileged signal: not comparable
        head.append(f"| {role} | " + " | ".join(cells) + " |")
    for a, b in NEURAL_DIFFS if kind == "neural" else IDENTITY_DIFFS:
        if a in rows and b in rows:
            cells = [_diff(rows[a][k], rows[b][k]) if len(rows[a].get(k, [])) == len(rows[b].get(k, [])) > 1
                     else "" for k in metrics]
            head.append(f"| **{a} − {b}** | " + " | ".join(cells) + " |")
    walls = [r["wall_s"] for r in records]
    conv = {}
    for r in records:
        for role, (best, run) in r["convergence"].items():
            conv.setdefault(role, []).append(f"{best}/{run}")
    head += ["", f"Wall time per replicate: {min(walls) / 60:.1f}–{max(walls) / 60:.1f} min. "
             "Best epoch / epochs run (counted from 0) per replicate: "
             + "; ".join(f"{role} {', '.join(v)}" for role, v in conv.items()) + ".", ""]
    return "\n".join(head)


# ----------------------------------------------------------------- identity: which classifier input

ROLE_KEYS = {"student": "X_blend", "teacher": "X_blend_teacher", "baseline": "X_blend_baseline"}


def _loao(x, y, groups, fit, classes, kind) -> float:
    """Leave-one-training-animal-out accuracy: fit on the other training animals, score each in turn."""
    import numpy as np

    from blend_spatial.classify import fit_predict

    scores = []
    for g in sorted(set(groups[fit])):
        held = fit & (groups == g)
        rest = fit & (groups != g)
        if len(set(y[rest])) < len(classes):
            continue
        pred, _ = fit_predict(x, y, rest, classes, kind)
        scores.append(np.mean(pred[held] == y[held]))
    return float(np.mean(scores))


def input_scores(run_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per role and candidate (input, classifier): leave-one-training-animal-out and held-out accuracy.

    Reads the run's ``h5ad/*.blend.h5ad`` (embeddings of each role, labels, split); the activity
    statistics are computed as the task computes them. Labels of the held-out animal enter only
    the ``held-out`` scores, never the ``loao`` ones.
    """
    import anndata as ad
    import numpy as np

    from blend_spatial.anndata_source import SUBCLASSES
    from blend_spatial.features import session_features

    files = sorted((run_dir / "h5ad").glob("*.blend.h5ad"))
    sessions = [ad.read_h5ad(f) for f in files]
    feats = np.concatenate([session_features(a.obsm["activity"], a.obsm["spatial"], 65.0) for a in sessions])
    obs = lambda k: np.concatenate([a.obs[k].astype(str).to_numpy() for a in sessions])
    subject, split = obs("subject"), obs("blend_split")
    labels = {"EC/IN": (obs("ei_class"), ["EC", "IN"]), "subclass": (obs("subclass"), list(SUBCLASSES))}
    out: dict[str, dict[str, dict[str, float]]] = {}
    inputs = {"features": lambda e: feats}
    for role, key in ROLE_KEYS.items():
        if key in sessions[0].obsm:
            emb = np.concatenate([a.obsm[key] for a in sessions])
            inputs[f"{role}: embedding"] = lambda e, emb=emb: emb
            inputs[f"{role}: embedding+features"] = lambda e, emb=emb: np.concatenate([emb, feats], axis=1)
    from blend_spatial.classify import fit_predict

    for name, make in inputs.items():
        x = make(None)
        for kind in ("svm", "logistic"):
            row = out.setdefault(f"{name} ({kind})", {})
            for lab, (y, classes) in labels.items():
                known = np.isin(y, classes)
                fit = (split == "train") & known
                row[f"loao {lab}"] = _loao(x, y, subject, fit, classes, kind)
                pred, _ = fit_predict(x, y, fit, classes, kind)
                test = (split == "test") & known
                row[f"held-out {lab}"] = float(np.mean(pred[test] == y[test]))
    return out


def print_inputs(setting_dir: Path) -> None:
    import numpy as np

    per = [input_scores(d / "run") for d in sorted(setting_dir.glob("r*")) if (d / "record.json").exists()]
    if not per:
        return
    cols = ["loao EC/IN", "loao subclass", "held-out EC/IN", "held-out subclass"]
    print(f"### {setting_dir.name}: classifier inputs ({len(per)} replicates; mean)\n")
    print("| input (classifier) | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for name in per[0]:
        print(f"| {name} | " + " | ".join(f"{np.mean([p[name][c] for p in per]):.3f}" for c in cols) + " |")
    # classifier: auto, per replicate and label set: the classifier with the better loao score
    for base in dict.fromkeys(n.rsplit(" (", 1)[0] for n in per[0]):
        cells = []
        for c in cols:
            lab = c.split(" ", 1)[1]
            picked = [p[f"{base} ({max(('svm', 'logistic'), key=lambda k: p[f'{base} ({k})'][f'loao {lab}'])})"][c]
                      for p in per]
            cells.append(f"{np.mean(picked):.3f}")
        print(f"| {base} (auto) | " + " | ".join(cells) + " |")
    print()


def print_tables(out: Path) -> None:
    for kind in ("neural", "identity"):
        for d in sorted((out / kind).glob("*")) if (out / kind).exists() else []:
            text = table(d, kind)
            if text:
                print(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for kind in ("neural", "identity"):
        s = sub.add_parser(kind)
        s.add_argument("out", type=Path)
        s.add_argument("--settings", nargs="+", required=True)
        s.add_argument("--replicates", type=int, default=3)
        s.add_argument("--first", type=int, default=0, help="index of the first replicate (to split a sweep "
                                                             "over processes)")
        s.add_argument("--seed-base", type=int, default=1000, help="generator seed of replicate 0 (held out: >= 1000)")
        s.add_argument("--controls", action="store_true", help="add the self-distillation control")
        if kind == "neural":
            s.add_argument("--max-epochs", type=int, default=300, help="cap per role (early stopping ends most runs)")
        else:
            s.add_argument("--set", action="append", default=[], dest="sets", help="extra blend run --set")
    t = sub.add_parser("table")
    t.add_argument("out", type=Path)
    t = sub.add_parser("inputs", help="identity: score each classifier input on a setting's runs")
    t.add_argument("setting_dir", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "neural":
        from blend_nwb.robustness import SETTINGS
    elif args.cmd == "identity":
        from blend_spatial.robustness import SETTINGS
    if args.cmd in ("neural", "identity"):
        unknown = [s for s in args.settings if s not in SETTINGS]
        if unknown:
            print(f"error: --settings: unknown {args.cmd} setting(s) {', '.join(unknown)}; expected one of "
                  f"{', '.join(SETTINGS)}", file=sys.stderr)
            return 2
    if args.cmd == "neural":
        reps = range(args.first, args.first + args.replicates)
        run_neural(args.out, args.settings, reps, args.seed_base, args.max_epochs, args.controls)
    elif args.cmd == "identity":
        reps = range(args.first, args.first + args.replicates)
        run_identity(args.out, args.settings, reps, args.seed_base, args.sets, args.controls)
    if args.cmd == "inputs":
        print_inputs(args.setting_dir)
        return 0
    print_tables(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
