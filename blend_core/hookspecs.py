"""The whole plugin contract of blend, in one module.

Every extension kind is contributed through a *registration* hook: the hook
receives a ``register`` callable bound to that kind and to the calling plugin,
so that duplicate names and failures can be attributed to a plugin by name.
Built-in components (``blend_core.builtin``) register through these very hooks,
exactly like third-party packages found through the ``blend`` entry-point group.

A registration is ``register(name, config_cls, factory, description="")``:

- ``name``: unique across all plugins for that kind; the value of ``type:`` in YAML.
- ``config_cls``: an ``attrs`` class with defaults for every field; the YAML keys
  of the section (other than ``type``) are structured into it, strictly.
- ``factory``: builds the component from a config instance (signatures below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from blend_core.registry import Register
    from blend_core.results import RunResult

PROJECT_NAME = "blend"

#: The hook API's version: (major, minor). A minor bump adds hooks or optional members;
#: a major bump renames, removes or changes the signature of a hook (see docs/plugins.md).
HOOK_API_VERSION = (1, 0)


class Subparsers(Protocol):
    """What ``blend_add_commands`` receives: the ``blend`` command's subparsers."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add a subcommand; keyword arguments are ``argparse.ArgumentParser``'s (``help=...``)."""


hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def blend_add_data_sources(register: Register) -> None:
    """Register data sources: ``factory(config) -> DataSource``.

    A ``DataSource`` has ``load() -> data`` (a validated ``blend_core.data.NeuralData``
    or another task's data object whose class names its ``task``) and may define
    ``write_predictions(predictions, out_dir[, run_dir]) -> list[Path]`` for ``blend predict``.
    The built source must satisfy ``DataSource`` (checked when it is built).

    Calling mode: once per command, when the registry is built; every implementation is called
    (results are ignored); an exception is reported as that plugin's failure and the others load.
    """


@hookspec
def blend_add_tasks(register: Register) -> None:
    """Register tasks: ``factory(config, data, device) -> Task`` (see ``blend_core.task``).

    A task owns batching, input masking, the task loss and evaluation for one kind
    of data; the trainer and the runner are shared by all tasks. The built task must
    satisfy ``Task`` (checked when it is built); it may declare ``refused_losses``.

    Calling mode: once per command, when the registry is built; every implementation is called
    (results are ignored); an exception is reported as that plugin's failure and the others load.
    """


@hookspec
def blend_add_backbones(register: Register) -> None:
    """Register backbones: ``factory(config, dims: ModelDims) -> torch.nn.Module``.

    The module's ``forward(x, context=None, **extra)`` returns a
    ``blend_core.model.ModelOutput`` and it exposes ``feature_dims``.
    Which inputs a backbone receives is defined by the task that uses it. Every built
    model is checked by a dry run on the task's data before training (``blend_core.contracts``).

    Calling mode: once per command, when the registry is built; every implementation is called
    (results are ignored); an exception is reported as that plugin's failure and the others load.
    """


@hookspec
def blend_add_encoders(register: Register) -> None:
    """Register privileged-feature encoders: ``factory(config, in_dim: int) -> nn.Module``.

    The module maps behavior ``(..., in_dim)`` to ``(..., out_dim)`` and exposes ``out_dim``.

    Calling mode: once per command, when the registry is built; every implementation is called
    (results are ignored); an exception is reported as that plugin's failure and the others load.
    """


@hookspec
def blend_add_distillation_losses(register: Register) -> None:
    """Register distillation losses: ``factory(config, dims: FeatureDims) -> nn.Module``.

    The module's ``forward(student: ModelOutput, teacher: ModelOutput) -> Tensor``
    returns a scalar; its parameters (e.g. feature projections) train with the student.

    Calling mode: once per command, when the registry is built; every implementation is called
    (results are ignored); an exception is reported as that plugin's failure and the others load.
    """


@hookspec
def blend_run_finished(run: RunResult) -> None:
    """Called after a run has trained and scored its models, before it is reported.

    Plugins may write extra outputs into ``run.out_dir`` (e.g. benchmark submission
    files) and may add or replace entries of ``run.metrics`` (e.g. with a benchmark's
    own scorer's values); ``metrics.json`` and the printed table are written after
    this hook.

    Calling mode: once per run (per seed with ``--seeds``), after scoring; every
    implementation is called, the last registered first (pluggy's order: entry-point plugins,
    registered after the built-ins, run before them; ``hookimpl(tryfirst=True)`` or
    ``trylast=True`` pins a place); results are ignored; an exception aborts the run.
    """


@hookspec
def blend_add_commands(subparsers: Subparsers) -> None:
    """Add ``blend`` subcommands: ``sp = subparsers.add_parser(name, help=...)``, then
    ``sp.set_defaults(handler=fn)`` with ``fn(args) -> int`` (the exit code). Raise
    ``BlendError`` for bad input.

    Calling mode: once per command, when the command line is parsed (also for
    ``--help``); every implementation is called; results are ignored.
    """


@hookspec
def blend_epoch_end(run_dir: Path, role: str, record: dict[str, float]) -> None:
    """Called after each validation epoch of each role, as it trains (live tracking).

    ``run_dir`` is the run directory (``OUT`` or ``OUT/seed-N``); ``role`` is
    ``teacher``, ``student``, ``baseline``, or a control role (``control_teacher``,
    ``control_student``). ``record`` holds plain floats: ``epoch`` (0-based),
    ``train_loss`` (mean over the epoch's batches), ``val_loss``, ``lr`` (at the end
    of the epoch), ``seconds`` (wall time of the epoch, validation included), and one
    ``train_<term>`` per named loss term (``train_task``, ``train_distill`` for a
    student, backbone terms such as ``train_kl``). After ``--resume`` the epochs
    since the last checkpoint are reported again. The built-in
    ``blend_core.builtin.tracking`` writes ``history.csv`` (and TensorBoard events)
    through this hook. Every implementation is called; exceptions abort the run.
    """
