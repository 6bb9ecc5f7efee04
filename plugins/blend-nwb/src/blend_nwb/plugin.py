"""blend hooks of blend-nwb: the ``nwb`` data source and NLB submissions after each run."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from blend_core.api import Register, hookimpl
from blend_nwb.nlb import SPECS
from blend_nwb.source import NWBConfig, NWBSource, build_source

log = logging.getLogger("blend.nwb")


@hookimpl
def blend_add_data_sources(register: Register) -> None:
    register("nwb", NWBConfig, build_source,
             "NWB sessions: the NLB'21 datasets exactly as nlb_tools, or your own (units, trials, behavior)")


@hookimpl
def blend_run_finished(run: Any) -> None:
    """Record the input files' sha256 (``nwb-source.json``); in NLB mode write ``submission-<role>.h5``
    and, in the val phase, ``nlb-target.h5`` with metrics replaced by nlb_tools' scores."""
    source = run.source
    if run.config.data.type != "nwb" or not isinstance(source, NWBSource):
        return
    from blend_core.api import write_json

    from blend_nwb import __version__

    write_json(run.out_dir / "nwb-source.json", {
        "plugin": f"blend-nwb {__version__}", "dataset": source.config.dataset,
        "phase": source.config.phase if source.config.dataset else None, "files": source.files})
    res = source.nlb
    if res is None:
        return
    from blend_nwb.evaluation import score_submission, submission_tree, write_h5

    data = res.data
    target_path = None if res.phase == "test" else write_h5(run.out_dir / "nlb-target.h5", {res.key: res.target})
    for role, pred in run.predictions.items():
        tree = submission_tree(res.key, pred["rates"], res.train_rows, res.eval_rows, data.window_bins, data.n_heldin)
        path = write_h5(run.out_dir / f"submission-{role}.h5", tree)
        if target_path is None:  # test phase: the leaderboard scores it
            continue
        scores = score_submission(path, target_path)[res.key]
        mine = run.metrics.setdefault(role, {})
        for name, value in scores.items():
            old = mine.get(name)
            if isinstance(old, float) and not math.isclose(old, value, rel_tol=1e-6, abs_tol=1e-6):
                log.warning("%s %s: core computed %.8f, nlb evaluation of %s gives %.8f; reporting the latter",
                            role, name, old, path.name, value)
            mine[name] = value


@hookimpl
def blend_add_commands(subparsers: Any) -> None:
    score = subparsers.add_parser("score", help="score an NLB submission .h5 against a target .h5 (as nlb_tools)")
    score.add_argument("submission", help="submission .h5 (e.g. RUN_DIR/submission-student.h5)")
    score.add_argument("target", help="target .h5 (e.g. RUN_DIR/nlb-target.h5)")
    score.add_argument("--json", action="store_true", help="print JSON instead of lines")
    score.set_defaults(handler=_score_command)
    fetch = subparsers.add_parser("fetch", help="download an NLB dataset's pinned DANDI files (blend-nwb[fetch])")
    fetch.add_argument("dataset", help="NLB dataset: " + ", ".join(SPECS))
    fetch.add_argument("--dir", default=".", help="download into DIR/<dandiset>/ (default: the current directory)")
    fetch.set_defaults(handler=_fetch_command)


def _fetch_command(args: Any) -> int:
    from blend_nwb.fetch import fetch

    files = fetch(args.dataset, args.dir)
    spec = SPECS[args.dataset]
    print(f"DANDI:{spec.dandiset}/{spec.version} ({args.dataset}): {files['train']} and {files['test']}; "
          "data.path is the first (printed below), data.phase: test reads the second", file=sys.stderr)
    print(files["train"])  # alone on stdout: blend run ... --set data.path=$(blend fetch DATASET)
    return 0


def _score_command(args: Any) -> int:
    import json
    from pathlib import Path

    from blend_core.api import BlendError
    from blend_nwb.evaluation import score_submission

    for path in (args.submission, args.target):
        if not Path(path).is_file():
            raise BlendError(f"{path}: file not found")
    scores = score_submission(args.submission, args.target)
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        for dataset, values in scores.items():
            for name, value in values.items():
                print(f"{dataset}\t{name}\t{value:.6f}")
    return 0
