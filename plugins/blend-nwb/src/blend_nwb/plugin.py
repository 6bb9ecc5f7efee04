"""blend hooks of blend-nwb: the ``nwb`` data source and NLB submissions after each run."""

from __future__ import annotations

import logging
import math
from typing import Any

from blend_core.hookspecs import hookimpl
from blend_core.registry import Register
from blend_nwb.source import NWBConfig, build_source, nlb_result_for

log = logging.getLogger("blend.nwb")


@hookimpl
def blend_add_data_sources(register: Register) -> None:
    register("nwb", NWBConfig, build_source,
             "NWB sessions: the NLB'21 datasets exactly as nlb_tools, or your own (units, trials, behavior)")


@hookimpl
def blend_run_finished(run: Any) -> None:
    """NLB mode: write ``nlb-target.h5`` and ``submission-<role>.h5``; metrics become nlb_tools' scores."""
    if run.config.data.type != "nwb" or getattr(run.config.data.options, "dataset", None) is None:
        return
    from blend_nwb.evaluation import score_submission, submission_tree, write_h5

    found = nlb_result_for(run.data)
    if found is None:
        from blend_nwb.nlb import load_nlb

        opts = run.config.data.options
        res = load_nlb(opts.path, opts.dataset, bin_ms=opts.bin_ms, val_fraction=opts.val_fraction, seed=opts.seed,
                       behavior_lag_ms=opts.behavior_lag_ms, standardize_behavior=opts.standardize_behavior)
    else:
        res = found[0]
    data = res.data
    target_path = write_h5(run.out_dir / "nlb-target.h5", {res.key: res.target})
    for role, pred in run.predictions.items():
        tree = submission_tree(res.key, pred["rates"], res.train_rows, res.eval_rows, data.window_bins, data.n_heldin)
        path = write_h5(run.out_dir / f"submission-{role}.h5", tree)
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


def _score_command(args: Any) -> int:
    import json
    from pathlib import Path

    from blend_core.errors import BlendError
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
