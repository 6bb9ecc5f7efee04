"""NLB-mode load time of an MC_Maze-sized synthetic session: cold and warm (cache) vs the previous loader.

    python benchmarks/bench_load.py [--repeats 3] [--old-commit 514f3bb] [--nlb-tools] [--trials 2300]

Writes the session once with the plugin's own writer (182 = 137 + 45 neurons, 2,300 trials,
``blend_nwb.synthetic.write_nlb_file``, without the generator's ground truth, like a real
NLB file), then loads it in fresh processes, alternating variants:

- ``old``: the loader of ``--old-commit`` (``git archive`` of plugins/blend-nwb/src);
- ``cold``: this checkout with an empty cache directory (tensors computed, then stored);
- ``warm``: this checkout again, same cache directory (file hashed, entry read);
- ``nlb_tools`` (opt in; ~10 GB of memory at 2,300 trials, so ``--trials 500`` on a small
  machine): ``NWBDataset`` + ``make_train_input_tensors``, ``make_eval_input_tensors`` and
  ``make_eval_target_tensors(include_psth=True)``.

Each load reports wall and CPU seconds (the child's own, excluding interpreter start and
imports). Results go to ``benchmarks/results/load-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
path, mode = sys.argv[1], sys.argv[2]
if mode == "nlb_tools":
    from nlb_tools.nwb_interface import NWBDataset
    from nlb_tools.make_tensors import (make_eval_input_tensors, make_eval_target_tensors,
                                        make_train_input_tensors)
else:
    from blend_nwb.nlb import load_nlb
    from blend_nwb.source import NWBConfig, NWBSource
import resource
r0 = resource.getrusage(resource.RUSAGE_SELF)
w, c = time.perf_counter(), time.process_time()
if mode == "nlb_tools":
    ds = NWBDataset(path)
    ds.resample(5)
    make_train_input_tensors(ds, "mc_maze", "train", save_file=False, include_behavior=True,
                             include_forward_pred=True)
    make_eval_input_tensors(ds, "mc_maze", "val", save_file=False)
    make_eval_target_tensors(ds, "mc_maze", "train", "val", save_file=False, include_psth=True)
elif mode == "old":
    load_nlb(path, "mc_maze")
else:  # through the data source: hashing, cache lookup, and the load itself
    NWBSource(NWBConfig(path=path, dataset="mc_maze")).load()
w, c, r1 = time.perf_counter() - w, time.process_time() - c, resource.getrusage(resource.RUSAGE_SELF)
try:  # this process's own peak (ru_maxrss would carry the parent's over exec)
    rss = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
except (OSError, StopIteration):
    rss = r1.ru_maxrss / 1024
print(json.dumps({"wall_s": w, "cpu_s": c, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "max_rss_mb": rss}))
"""


def _child(path: Path, mode: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{mode} load failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _old_tree(commit: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(REPO), "archive", commit, "plugins/blend-nwb/src"],
                          capture_output=True, check=True).stdout
    tar = into / "old.tar"
    tar.write_bytes(data)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into / "plugins" / "blend-nwb" / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=None, help="the session (written if missing); default under the temp dir")
    ap.add_argument("--trials", type=int, default=2300, help="trials of the written session (MC_Maze: 2,300)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--old-commit", default="514f3bb", help="the loader to compare with (before issue 12)")
    ap.add_argument("--nlb-tools", action="store_true", help="also time nlb_tools' make_tensors path (~10 GB RAM)")
    ap.add_argument("--name", default="cpu-2core-mcmaze")
    args = ap.parse_args()

    stem = "mc_maze_sized" + ("" if args.trials == 2300 else f"-{args.trials}")
    path = Path(args.file or Path(tempfile.gettempdir()) / "blend-bench" / f"{stem}.nwb")
    if not path.exists():
        from blend_nwb.synthetic import write_nlb_file

        path.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_nlb_file(path, dataset="mc_maze", n_trials=args.trials, n_heldin=137, n_heldout=45, seed=0,
                       truth=False)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    load_start = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {"old": [], "cold": [], "warm": []}
    if args.nlb_tools:
        results["nlb_tools"] = []
    with tempfile.TemporaryDirectory() as tmp:
        old_src = _old_tree(args.old_commit, Path(tmp))
        base = dict(os.environ)
        old_env = {**base, "PYTHONPATH": f"{old_src}{os.pathsep}{base.get('PYTHONPATH', '')}"}
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache-{i}"
            env = {**base, "BLEND_CACHE_DIR": str(cache)}
            results["old"].append(_child(path, "old", old_env))
            results["cold"].append(_child(path, "new", env))
            results["warm"].append(_child(path, "new", env))
            if args.nlb_tools:
                results["nlb_tools"].append(_child(path, "nlb_tools", base))
            print(f"repeat {i}: " + ", ".join(f"{k} {v[-1]['wall_s']:.2f} s" for k, v in results.items() if v))
    summary = {k: {"wall_s_median": statistics.median(r["wall_s"] for r in v),
                   "wall_s_min": min(r["wall_s"] for r in v),
                   "cpu_s_median": statistics.median(r["cpu_s"] for r in v)} for k, v in results.items()}
    summary["speedup_cold_vs_old_wall"] = summary["old"]["wall_s_median"] / summary["cold"]["wall_s_median"]
    summary["speedup_cold_vs_old_cpu"] = summary["old"]["cpu_s_median"] / summary["cold"]["cpu_s_median"]
    if args.nlb_tools:
        summary["speedup_cold_vs_nlb_tools_cpu"] = summary["nlb_tools"]["cpu_s_median"] / summary["cold"]["cpu_s_median"]
    record = {
        "what": "NLB-mode load (mc_maze, 5 ms) of a synthetic MC_Maze-sized session",
        "file": {"trials": args.trials, "neurons": "137 + 45", "bytes": path.stat().st_size},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_start": load_start, "load_average_end": os.getloadavg()},
        "old_commit": args.old_commit, "runs": results, "summary": summary,
    }
    out = REPO / "benchmarks" / "results" / f"load-{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
