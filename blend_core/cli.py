"""The ``blend`` command line. Bad input: one line on stderr, exit 2 (``--debug`` for the traceback)."""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Sequence

from blend_core.errors import BlendError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  #: a role's training diverged (non-finite validation loss)


def _global_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-p", "--plugin", action="append", default=[], metavar="NAME",
                   help="load this installed plugin (entry-point name) even with autoload off")


def add_config_args(sp: argparse.ArgumentParser, print_config: bool = True) -> None:
    """``--set``, ``--unset`` (one list, in command-line order) and ``--print-config``."""
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                    help="override a config key, e.g. train.max_epochs=5; KEY=null drops it (repeatable)")
    sp.add_argument("--unset", action="append", metavar="KEY", dest="overrides", type=lambda key: f"{key}=null",
                    help="drop a config key so that its default applies (repeatable)")
    if print_config:
        sp.add_argument("--print-config", action="store_true",
                        help="print the resolved config (every default filled in) and exit")


def _parser(plugins) -> argparse.ArgumentParser:
    conflicts = "; ".join(plugins.registry.conflicts)
    p = argparse.ArgumentParser(prog="blend", description=__doc__,
                                epilog=f"plugin conflict: {conflicts}" if conflicts else None)
    _global_options(p)
    sub = p.add_subparsers(dest="command", required=True)

    def add_run_args(sp: argparse.ArgumentParser) -> None:
        add_config_args(sp)
        sp.add_argument("--out", type=Path, help="run directory (default: output.dir)")
        sp.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
        sp.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
        sp.add_argument("--seeds", type=int, default=1, metavar="K",
                        help="repeat over K training seeds (train.seed, +1, ...) and report mean ± sd")
        sp.add_argument("--at-once", action="store_true",
                        help="with --seeds: train the K models of each role together (vmapped; for GPUs)")

    run = sub.add_parser("run", help="train teacher, student and baseline; score them")
    run.add_argument("config", type=Path)
    add_run_args(run)
    run.add_argument("--auto", action="store_true",
                     help="search the recipe for this dataset first (the config's auto: section; Ray Tune), "
                          "then run with what it chose (docs/experiments.md)")
    run.add_argument("--address", help="with --auto: an existing Ray cluster (default: RAY_ADDRESS, else this machine)")
    demo = sub.add_parser("demo", help="a quick BLEND run on built-in synthetic data")
    add_run_args(demo)
    val = sub.add_parser("validate", help="check a config without running it")
    val.add_argument("config", type=Path)
    add_config_args(val)
    sub.add_parser("plugins", help="list plugins and what they contribute")
    pred = sub.add_parser("predict", help="apply a run's trained student to data (no behavior needed)")
    pred.add_argument("run_dir", type=Path)
    pred.add_argument("--data", help="data.path of the sessions to predict (default: the run's data)")
    pred.add_argument("--out", type=Path, help="output directory (default: RUN_DIR/predictions)")
    pred.add_argument("--overwrite", action="store_true")
    _add_experiment_commands(sub)
    plugins.manager.hook.blend_add_commands(subparsers=sub)
    return p


def _plugins(args: argparse.Namespace, extra: Sequence[str] = ()):
    from blend_core.plugins import load_plugins, report_failures

    plugins = load_plugins([*args.plugin, *extra])
    report_failures(plugins)
    return plugins


def _load(args: argparse.Namespace, path: Path):
    """The config at ``path`` with ``--set``/``--unset`` applied, and the plugins it names loaded.

    A problem with a key given on the command line is reported as the ``--set``'s, not the file's.
    """
    import copy

    from blend_core.config import apply_overrides, build_config, override_sources, read_yaml
    from blend_core.errors import ConfigError
    from blend_core.rundir import protect

    raw = read_yaml(path)
    protect(path)  # the folder holding a config is never used (or replaced) as a run directory
    extra = []
    if isinstance(raw, dict):  # the plugins the config names (maybe by --set) come first: they add types
        extra = apply_overrides(copy.deepcopy(raw), args.overrides).get("plugins", [])
    plugins = args.plugins
    extra = [n for n in extra if isinstance(n, str)] if isinstance(extra, list) else []  # others: build_config's line
    if any(not plugins.manager.has_plugin(n) for n in extra):
        plugins = _plugins(args, extra)  # loaded again only when the config names a plugin not yet loaded
    plugins.registry.check_conflicts()
    if isinstance(raw, dict):
        notes: list[str] = []
        raw = apply_overrides(raw, args.overrides, plugins.registry, notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    try:
        config = build_config(raw, plugins.registry, source=str(path))
        _check_sections(raw, plugins.registry, str(path))
        return config, plugins
    except ConfigError as exc:
        raise ConfigError(exc.problems, exc.source,
                          override_sources(exc.problems, args.overrides, exc.source)) from None


def _check_sections(raw: dict, registry, source: str) -> None:
    """The sections of commands above the config (``sweep:`` for ``blend sweep``, ``auto:`` for
    ``blend run --auto``): every command that reads a config checks them, though only theirs use them."""
    from blend_core.errors import ConfigError

    if "sweep" in raw:
        from blend_core.sweep import parse_sweep

        parse_sweep(raw, registry, source)
    if "auto" in raw:
        from blend_core.auto import parse_auto

        try:
            parse_auto(raw)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source) from None


def _print_config(config) -> int:
    """``--print-config``: the resolved config (every default filled in) as YAML, and nothing run."""
    import yaml

    from blend_core.config import resolved_dict

    print(yaml.safe_dump(resolved_dict(config), sort_keys=False), end="")
    return 0


def cmd_run(args: argparse.Namespace, config_path: Path) -> int:
    from blend_core.runner import format_summary, format_table, run, run_seeds

    config, plugins = _load(args, config_path)
    if args.print_config:
        return _print_config(config)
    if args.seeds < 1:
        raise BlendError(f"--seeds: expected a positive number, got {args.seeds}")
    if getattr(args, "auto", False):
        _check_resume(args, Path(args.out or config.output.dir))
        return cmd_auto(args, config_path, config, plugins)
    if getattr(args, "address", None):
        raise BlendError("--address: only with --auto (the search runs on Ray; a plain run does not)")
    _check_resume(args, Path(args.out or config.output.dir), args.seeds)
    if args.seeds > 1:
        with warnings.catch_warnings():
            if args.at_once:
                _at_once_note(config)
            summary = run_seeds(config, plugins, args.seeds, out_dir=args.out, overwrite=args.overwrite,
                                resume=args.resume, at_once=args.at_once)
        print(format_summary(summary))
        _print_warnings(Path(args.out or config.output.dir))
        print(f"\nrun directory: {args.out or config.output.dir}")
        return 0
    result = run(config, plugins, out_dir=args.out, overwrite=args.overwrite, resume=args.resume)
    print(format_table(result.metrics))
    _print_warnings(result.out_dir)
    print(f"\nrun directory: {result.out_dir}")
    if args.command == "demo":
        _keep_newest_demo_backup(result.out_dir)
    return 0


def _at_once_note(config) -> None:
    """--at-once on a CPU: PyTorch's "please file an issue" warning about vmap fallbacks is silenced
    (the caller's catch_warnings scopes it), and the user is told what differs from sequential seeds."""
    from blend_core.training import resolve_device

    if resolve_device(config.train.device).type != "cpu":
        return
    warnings.filterwarnings("ignore", message=".*not yet implemented the batching rule.*")
    print("note: --at-once on a CPU: the seeds train as one vmapped model; results differ slightly from "
          "sequential seeds (float rounding, dropout draws); it is meant for GPUs",
          file=sys.stderr)


def _keep_newest_demo_backup(out: Path) -> None:
    """``blend demo --overwrite`` moves the previous demo aside each time; of those ``OUT.old-*``
    blend run directories, keep only the newest, so that reruns do not pile up."""
    import shutil

    from blend_core.rundir import is_run_dir

    backups = sorted((p for p in out.parent.glob(f"{out.name}.old-*") if p.is_dir() and is_run_dir(p)),
                     key=lambda p: p.name)  # NAME.old-YYYYmmdd-HHMMSS[-n]: by time
    for old in backups[:-1]:
        shutil.rmtree(old)


def _check_resume(args: argparse.Namespace, out: Path, seeds: int | None = None) -> None:
    """``--resume`` with ``--overwrite`` is refused (one continues the run, the other moves it aside),
    and so is ``--resume`` whose ``--seeds`` does not fit the layout of the run in ``out``."""
    if args.resume and args.overwrite:
        raise BlendError("--resume and --overwrite: pick one (--resume continues the run in place; "
                         "--overwrite moves it aside and starts again)")
    if not args.resume or seeds is None or not out.is_dir():
        return
    from blend_core.loaded import seed_dirs

    single, found = (out / "config.yaml").exists(), seed_dirs(out)
    if seeds > 1 and single:
        raise BlendError(f"--resume --seeds {seeds}: {out} holds a single-seed run; resume it without --seeds, "
                         "or start the seeds in a new --out")
    if found and not single and (seeds == 1 or len(found) > seeds):
        raise BlendError(f"--resume: {out} holds a --seeds run of {len(found)} seeds; "
                         f"resume it with --seeds {len(found)}")


def _print_warnings(run_dir: Path) -> None:
    """Under the table: what explains numbers below the references (blend_core.explain)."""
    from blend_core.explain import run_warnings

    for line in run_warnings(run_dir):
        print(f"warning: {line}")


def cmd_auto(args: argparse.Namespace, config_path: Path, config, plugins) -> int:
    from blend_core.auto import format_auto, run_auto
    from blend_core.config import apply_overrides, read_yaml
    from blend_core.runner import format_summary, format_table

    if args.at_once:
        raise BlendError("--auto: --at-once is not supported; the final seeds run one by one")
    raw = apply_overrides(read_yaml(config_path), args.overrides, plugins.registry)
    out = args.out or Path(config.output.dir)
    summary = run_auto(raw, plugins, source=str(config_path), out_dir=out, seeds=args.seeds,
                       overwrite=args.overwrite or config.output.overwrite, resume=args.resume,
                       address=args.address, plugin_names=args.plugin)
    print(format_summary(summary["final"]) if args.seeds > 1 else format_table(summary["final"]))
    _print_warnings(Path(out) / "final")
    print(format_auto(summary))
    print(f"\nsearch: {out / 'auto'} (results.csv, best.yaml)\nrun directory: {out / 'final'}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the config, load the data, and dry-run every model on a tiny batch (as ``blend run`` does)."""
    from blend_core.build import build_task, load_data, resolve_task
    from blend_core.contracts import check_run
    from blend_core.training import resolve_device

    config, plugins = _load(args, args.config)
    if args.print_config:
        return _print_config(config)
    registry = plugins.registry
    _, data = load_data(config, registry)
    config = resolve_task(config, registry, data)
    device = resolve_device(config.train.device)
    check_run(config, registry, build_task(config, registry, data, device), device)
    teacher = f", {config.teacher.type} teacher" if config.teacher is not None else ""
    print(f"{args.config}: ok ({config.data.type} data, {config.backbone.type} backbone{teacher}, "
          f"{_count(len(config.distillation.losses), 'distillation loss', 'distillation losses')}; models checked on a batch of the data)")
    return 0


#: hooks listed under each plugin (the blend_add_* hooks show as the components they register)
LISTED_HOOKS = ("blend_run_finished", "blend_epoch_end", "blend_add_commands")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def cmd_plugins(args: argparse.Namespace) -> int:
    plugins = args.plugins
    by_plugin = plugins.registry.by_plugin()
    comps = [c for info in plugins.infos for c in by_plugin.get(info.name, [])]
    kind_w = max([len("hooks"), *(len(c.kind) for c in comps)]) + 2
    name_w = max([0, *(len(c.name) for c in comps)]) + 2
    for info in plugins.infos:
        tag = " (built-in)" if info.builtin else ""
        print(f"{info.name}  {info.version}{tag}")
        for comp in sorted(by_plugin.get(info.name, []), key=lambda c: (c.kind, c.name)):
            print(f"    {comp.kind:<{kind_w}}{comp.name:<{name_w}}{comp.description}")
        module = plugins.manager.get_plugin(info.name)
        hooks = [h.name for h in plugins.manager.get_hookcallers(module) or [] if h.name in LISTED_HOOKS]
        if hooks:
            print(f"    {'hooks':<{kind_w}}{', '.join(sorted(hooks))}")
    for line in plugins.failures:
        print(f"FAILED {line}")
    for line in plugins.registry.conflicts:
        print(f"CONFLICT {line}: commands that need components refuse to run")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from blend_core.predict import predict

    from blend_core.loaded import seed_dirs

    seeds = [] if (args.run_dir / "config.yaml").exists() else seed_dirs(args.run_dir)
    # a --seeds run: every seed's student, into SEED/predictions (or OUT/seed-N)
    jobs = [(d, args.out / d.name if args.out else None) for d in seeds] or [(args.run_dir, args.out)]
    for run_dir, out_dir in jobs:
        paths = predict(run_dir, data_path=args.data, out_dir=out_dir, overwrite=args.overwrite,
                        plugin_names=args.plugin, plugins=args.plugins)
        for path in paths:
            print(path)
    return 0


def _add_experiment_commands(sub) -> None:
    """``blend sweep`` and ``blend report`` (docs/experiments.md)."""
    sw = sub.add_parser("sweep", help="grid/random search over config keys on Ray Tune (the config's sweep: section)")
    sw.add_argument("config", type=Path)
    add_config_args(sw, print_config=False)
    sw.add_argument("--out", type=Path, help="sweep directory (default: output.dir)")
    sw.add_argument("--overwrite", action="store_true", help="replace an existing sweep directory")
    sw.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    sw.add_argument("--address", help="an existing Ray cluster (default: RAY_ADDRESS, else Ray on this machine)")
    sw.set_defaults(handler=cmd_sweep)
    cmp_ = sub.add_parser("compare", help="one table of every role and reference row across runs")
    cmp_.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="runs or --seeds runs")
    fmt = cmp_.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_const", const="csv", dest="format", help="print CSV")
    fmt.add_argument("--markdown", action="store_const", const="markdown", dest="format", help="print Markdown")
    cmp_.set_defaults(handler=cmd_compare, format="text")
    rep = sub.add_parser("report", help="figures and an HTML page for a run, a --seeds run or a sweep")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--out", type=Path, help="report directory (default: RUN_DIR/report)")
    rep.set_defaults(handler=cmd_report)


def cmd_sweep(args: argparse.Namespace) -> int:
    from blend_core.config import apply_overrides, read_yaml
    from blend_core.sweep import require_ray, run_sweep

    _check_resume(args, Path(args.out or "."))
    require_ray()
    _, plugins = _load(args, args.config)  # the base config and its sweep: section, validated
    raw = apply_overrides(read_yaml(args.config), args.overrides, plugins.registry)
    result = run_sweep(raw, plugins, source=str(args.config), out_dir=args.out, overwrite=args.overwrite,
                       resume=args.resume, address=args.address, plugin_names=args.plugin)
    print(result.table)
    print(f"\nresults: {result.dir / 'results.csv'}")
    if result.best is not None:
        print(f"best config: {result.best}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from blend_core.compare import compare

    print(compare(args.runs, args.format), end="" if args.format == "csv" else "\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from blend_core.report import write_report

    page = write_report(args.run_dir, out_dir=args.out)
    print(page)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    _global_options(pre)
    early, _ = pre.parse_known_args(argv)
    try:
        plugins = _plugins(early)
    except BlendError as exc:
        if early.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = _parser(plugins).parse_args(argv)
    args.plugins = plugins
    from blend_core import rundir
    from blend_core.errors import TrainingDiverged

    try:
        if getattr(args, "handler", None) is not None:
            return args.handler(args)
        if args.command == "run":
            return cmd_run(args, args.config)
        if args.command == "demo":
            return cmd_run(args, Path(str(files("blend_core") / "configs" / "quickstart.yaml")))
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "plugins":
            return cmd_plugins(args)
        return cmd_predict(args)
    except TrainingDiverged as exc:  # a result: the run directory (log, history) is kept
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_DIVERGED
    except (BlendError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, BlendError) and exc.filename is None:
            raise  # not about a file the user named (e.g. a closed pipe): not bad input
        rundir.discard_unfinished()  # no half-made run directory blocks the rerun
        if args.debug:
            raise
        from blend_core.errors import ConfigError

        if isinstance(exc, ConfigError) and exc.source is None and getattr(args, "config", None) is not None:
            from blend_core.config import override_sources

            exc = ConfigError(exc.problems, str(args.config),  # a problem found after parsing: name its origin
                              override_sources(exc.problems, getattr(args, "overrides", []), str(args.config)))
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        from blend_core.progress import close_all

        close_all()  # end the bar's line: the message below starts on its own
        print(f"interrupted; continue with: {resume_command(argv)}" if args.command in RESUMABLE
              else "interrupted", file=sys.stderr)
        return 130
    finally:
        rundir.end_of_command()


#: commands an interrupted run of which continues with --resume
RESUMABLE = ("run", "demo", "sweep")


def resume_command(argv: Sequence[str] | None) -> str:
    """The command line that continues this interrupted one: the same arguments, without
    ``--overwrite`` (it would move the partial run aside) and with ``--resume``."""
    import shlex

    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["blend", *args])


def _one_line(exc: BaseException) -> str:
    """The message a user reads: a ConfigError keeps one line per problem; anything else is one line."""
    from blend_core.errors import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, BlendError):  # e.g. a read-only --out, a full disk
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
