"""YAML configuration: strict, typed, with every problem reported at once by its path."""

from __future__ import annotations

import difflib
import json
import math
import re
import typing
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

import blend_core.validators as v
from blend_core.errors import BlendError, ConfigError
from blend_core.registry import Registry
from blend_core.roles import CONTROLS as ROLE_CONTROLS
from blend_core.validators import FieldError, short_repr
from blend_core.yamltext import MAX_YAML_NODES, StrictLoader, parse_yaml  # noqa: F401  (this module's API)

SECTIONS = ("data", "task", "backbone", "teacher", "privileged", "distillation", "train", "output", "controls")


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Optimisation budget and schedule, shared by teacher, student and baseline."""

    max_epochs: int = attrs.field(default=200, validator=v.POSITIVE_INT)
    batch_size: int = attrs.field(default=64, validator=v.POSITIVE_INT)
    lr: float = attrs.field(default=1e-3, validator=v.positive_finite())
    weight_decay: float = attrs.field(default=5e-5, validator=v.non_negative_finite())
    warmup_steps: int = attrs.field(default=100, validator=v.NON_NEGATIVE)
    #: optimizer steps of cosine decay after warm-up, then the lr stays at final_lr_ratio * lr;
    #: None: decay over the rest of max_epochs (a short budget then decays before learning starts)
    decay_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(v.POSITIVE_INT))
    final_lr_ratio: float = attrs.field(default=0.0, validator=v.in_range(0.0, 1.0))  #: lr floor after decay, as a fraction of lr
    min_epochs: int = attrs.field(default=0, validator=v.NON_NEGATIVE)  #: early stopping cannot fire before this many epochs
    grad_clip: float = attrs.field(default=200.0, validator=v.non_negative_finite())  #: 0: no clipping
    patience: int = attrs.field(default=50, validator=v.NON_NEGATIVE)
    #: what early stopping and the kept checkpoint watch on the validation split carved from training:
    #: ``loss`` (the task loss) or ``score`` (the task's validation score: co-bps for neural data,
    #: leave-one-training-animal-out accuracy for neuron identity; docs/experiments.md)
    monitor: Literal["loss", "score"] = "loss"
    eval_every: int = attrs.field(default=1, validator=v.POSITIVE_INT)
    checkpoint_every: int = attrs.field(default=50, validator=v.POSITIVE_INT)
    seed: int = attrs.field(default=0, validator=v.in_range(0, 2**63, high_open=True, high_text='2**63'))
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = attrs.field(default=None, validator=attrs.validators.optional(v.POSITIVE_INT))  #: CPU threads for torch (None: torch's default); 1 is fastest for tiny models
    compile: bool = False  #: torch.compile the model (pays off on GPU for long runs)
    progress: bool = True  #: a bar on a terminal; elsewhere (a log file) one line per progress_seconds
    progress_seconds: float = attrs.field(default=30.0, validator=v.non_negative_finite())  #: between progress lines when stderr is not a terminal
    tensorboard: bool = False  #: also write TensorBoard events to RUN_DIR/tensorboard (needs `tensorboard`)


@attrs.frozen(kw_only=True)
class OutputConfig:
    dir: str = "runs/blend"
    overwrite: bool = False


@attrs.frozen(kw_only=True)
class Selected:
    """A component chosen by ``type:`` and its typed options.

    ``type`` is None only for a ``task:`` section without ``type:``: the task is the
    one the data implies, and ``options`` stays the raw mapping until the data is loaded
    (``blend_core.build.resolve_task``).
    """

    type: str | None
    options: Any


@attrs.frozen(kw_only=True)
class PrivilegedConfig:
    """How behavior enters the teacher: the encoder and the fusion mode."""

    encoder: Selected
    fusion: Literal["concat", "add"] = "concat"


@attrs.frozen(kw_only=True)
class WeightedLoss:
    loss: Selected
    weight: float = 1.0


@attrs.frozen(kw_only=True)
class DistillationConfig:
    """``L = alpha * L_task + (1 - alpha) * sum(weight * L_distill)``."""

    alpha: float = 0.5
    losses: tuple[WeightedLoss, ...] = ()


@attrs.frozen(kw_only=True)
class Config:
    data: Selected
    task: Selected | None
    backbone: Selected  #: the student's and the baseline's backbone (and the teacher's, without ``teacher:``)
    #: the teacher's backbone when it differs (a mixed pair), from the ``teacher:`` section
    teacher: Selected | None = None
    privileged: PrivilegedConfig
    distillation: DistillationConfig
    train: TrainConfig
    output: OutputConfig
    plugins: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()  #: control experiments adding roles, e.g. ("self",): see blend_core.controls


# ---------------------------------------------------------------- structuring

class _Mismatch(Exception):
    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {short_repr(value)}")


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Mismatch("int", value)
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Mismatch("float", value)
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _Mismatch("str", value)
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch("bool", value)
    return value


def make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)
    return conv


CONVERTER = make_converter()


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _unknown_key(path: str, key: Any, allowed: list[str]) -> str:
    if not isinstance(key, str):  # e.g. `train: {1: 2}`: YAML reads 1 as a number
        return f"{path}{short_repr(key)}: unknown key (not a name); expected one of: {', '.join(sorted(allowed))}"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"{path}{key}: unknown key; did you mean {close[0]!r}?"
    return f"{path}{key}: unknown key; expected one of: {', '.join(sorted(allowed))}"


def _flatten(exc: BaseException, path: str, tp: Any, out: list[str]) -> None:
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = [a.name for a in attrs.fields(exc.cl)]
        out.extend(_unknown_key(path, k, allowed) for k in sorted(exc.extra_fields))
    elif isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            _flatten(sub, f"{path}{note.name}.", note.type, out)
        for sub in without:
            _flatten(sub, path, tp, out)
    elif isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            _flatten(sub, f"{path}{note.index}.", note.type, out)
        for sub in without:
            _flatten(sub, path, tp, out)
    else:
        where = path.rstrip(".")
        invalid = _invalid_value(exc)
        if invalid is not None:  # an attrs validator of the config class: name the key, not the class
            out.append(f"{path}{invalid[0]}: {invalid[1]}")
        elif isinstance(exc, _Mismatch):
            out.append(f"{where}: {exc}")
        elif isinstance(exc, KeyError):
            out.append(f"{where}{'.' if where else ''}{exc.args[0]}: required key missing")
        elif typing.get_origin(tp) is Literal:
            out.append(f"{where}: expected {_type_name(tp)}")
        else:
            out.append(f"{where}: expected {_type_name(tp)} ({exc})")


_ATTRS_MESSAGE = re.compile(r"^'(\w+)' (must be .*?)(?:: (.*))?$", re.DOTALL)


def _invalid_value(exc: BaseException) -> tuple[str, str] | None:
    """``(key, problem)`` for a validator's error: ours (FieldError) or attrs' own (``'x' must be > 0: 0``)."""
    if isinstance(exc, FieldError):
        return exc.field, exc.message
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], str):
        match = _ATTRS_MESSAGE.match(exc.args[0])
        if match:
            key, rule, got = match.groups()
            return key, rule if got is None else f"{rule}, got {got[:60]}"
    return None


def structure(data: Any, cls: type, path: str, problems: list[str]) -> Any:
    """Structure ``data`` into ``cls``, appending ``path``-prefixed problems on failure."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{path.rstrip('.')}: expected a mapping, got {short_repr(data)}")
        return None
    try:
        return CONVERTER.structure(data, cls)
    except Exception as exc:  # cattrs raises exception groups; flatten them
        _flatten(exc, path, cls, problems)
        return None


def _select(
    raw: Any, section: str, kind: str, registry: Registry, problems: list[str],
    reserved: tuple[str, ...] = (),
) -> Selected | None:
    if not isinstance(raw, dict):
        problems.append(f"{section}: expected a mapping with 'type', got {short_repr(raw)}")
        return None
    options = {k: v for k, v in raw.items() if k != "type" and k not in reserved}
    name = raw.get("type")
    if name is None:
        problems.append(
            f"{section}.type: required key missing; available: {', '.join(registry.names(kind))}"
        )
        return None
    if not isinstance(name, str):
        problems.append(f"{section}.type: expected str, got {short_repr(name)}")
        return None
    try:
        component = registry.get(kind, name, f"{section}.type")
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    value = structure(options, component.config_cls, f"{section}.", problems)
    return None if value is None else Selected(type=name, options=value)


DEFAULTS: dict[str, Any] = {
    "privileged": {"type": "identity", "fusion": "concat"},
    "distillation": {"alpha": 0.5, "type": "correlation"},
}


def _distillation(raw: Any, registry: Registry, problems: list[str]) -> DistillationConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"distillation: expected a mapping, got {short_repr(raw)}")
        return None
    alpha = raw.get("alpha", 0.5)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        problems.append(f"distillation.alpha: expected a float in [0, 1], got {short_repr(alpha)}")
    if "type" in raw and "losses" in raw:
        problems.append("distillation: give either 'type' (one loss) or 'losses' (a list), not both")
        return None
    if "losses" in raw:
        items = raw["losses"]
        if not isinstance(items, list) or not items:
            problems.append(f"distillation.losses: expected a non-empty list, got {short_repr(items)}")
            return None
        extra = sorted(set(raw) - {"alpha", "losses"})
        problems.extend(_unknown_key("distillation.", k, ["alpha", "losses"]) for k in extra)
        entries = [(f"distillation.losses.{i}", item) for i, item in enumerate(items)]
    else:
        entries = [("distillation", {k: v for k, v in raw.items() if k != "alpha"})]
    losses = []
    for path, item in entries:
        weight = item.get("weight", 1.0) if isinstance(item, dict) else 1.0
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            problems.append(f"{path}.weight: expected float, got {short_repr(weight)}")
            continue
        if not math.isfinite(weight) or weight < 0:
            problems.append(f"{path}.weight: must be a finite number >= 0, got {short_repr(weight)}")
            continue
        chosen = _select(item, path, "distillation loss", registry, problems, ("weight",))
        if chosen is not None:
            losses.append(WeightedLoss(loss=chosen, weight=float(weight)))
    return DistillationConfig(alpha=float(alpha), losses=tuple(losses))


def _task(raw: Any, registry: Registry, problems: list[str]) -> Selected | None:
    """``task:`` with ``type:`` picks a task; without it, its keys configure the task the data implies."""
    if raw is None:
        return None
    if isinstance(raw, dict) and "type" not in raw:
        return Selected(type=None, options=dict(raw))
    return _select(raw, "task", "task", registry, problems)


def _teacher(raw: Any, backbone: Any, registry: Registry, problems: list[str]) -> Selected | None:
    """The ``teacher:`` section: keys that override ``backbone:`` for the teacher only.

    Without ``type:`` (or with the backbone's type) the keys are merged over the
    backbone's; with another ``type:`` the teacher is that backbone, configured by
    this section's keys alone (the other type's keys would not apply).
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"teacher: expected a mapping of backbone keys, got {raw!r}")
        return None
    base = backbone if isinstance(backbone, dict) else {}
    if raw.get("type", base.get("type")) == base.get("type"):
        raw = {**base, **raw}
    return _select(raw, "teacher", "backbone", registry, problems)


#: control experiments a run can add (``controls: [self]``; see ``blend_core.controls``)
CONTROLS = tuple(ROLE_CONTROLS)  #: their roles: blend_core.roles.CONTROLS


def _controls(raw: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        problems.append(f"controls: expected a list of control names such as [self], got {raw!r}")
        return ()
    problems.extend(f"controls: unknown control {c!r}; expected one of: {', '.join(CONTROLS)}"
                    for c in raw if c not in CONTROLS)
    return tuple(dict.fromkeys(c for c in raw if c in CONTROLS))


def build_config(raw: Any, registry: Registry, source: str | None = None) -> Config:
    """Validate a parsed YAML mapping against the registry; raise one ConfigError listing all problems."""
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a mapping of sections, got {type(raw).__name__}"], source)
    problems: list[str] = []
    for key in raw:
        if key not in SECTIONS and key not in ("plugins", "sweep", "auto"):
            problems.append(_unknown_key("", str(key), [*SECTIONS, "plugins", "sweep", "auto"]))
    for key in ("data", "backbone"):
        if key not in raw:
            problems.append(f"{key}: required section missing")
    data = _select(raw["data"], "data", "data source", registry, problems) if "data" in raw else None
    task = _task(raw.get("task"), registry, problems)
    backbone = (
        _select(raw["backbone"], "backbone", "backbone", registry, problems)
        if "backbone" in raw else None
    )
    teacher = _teacher(raw.get("teacher"), raw.get("backbone"), registry, problems)
    praw = raw.get("privileged", DEFAULTS["privileged"])
    encoder = _select(praw, "privileged", "encoder", registry, problems, ("fusion",))
    fusion = praw.get("fusion", "concat") if isinstance(praw, dict) else "concat"
    if fusion not in ("concat", "add"):
        problems.append(f"privileged.fusion: expected one of 'concat', 'add', got {short_repr(fusion)}")
    distillation = _distillation(raw.get("distillation", DEFAULTS["distillation"]), registry, problems)
    train = structure(raw.get("train"), TrainConfig, "train.", problems)
    output = structure(raw.get("output"), OutputConfig, "output.", problems)
    controls = _controls(raw.get("controls", []), problems)
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        problems.append(f"plugins: expected a list of plugin names, got {short_repr(plugins)}")
    if problems:
        raise ConfigError(problems, source)
    # `sweep:` and `auto:` belong to `blend sweep` and `blend run --auto`, which sit above the config:
    # they are validated there (blend_core.sweep.parse_sweep, blend_core.auto.parse_auto; the CLI checks
    # both for every command that reads a config), never here
    return Config(
        data=data, task=task, backbone=backbone, teacher=teacher,
        privileged=PrivilegedConfig(encoder=encoder, fusion=fusion),
        distillation=distillation, train=train, output=output, plugins=tuple(plugins), controls=controls,
    )


def _selected_dict(sel: Selected | None, **extra: Any) -> dict[str, Any] | None:
    if sel is None:
        return None
    if sel.type is None:  # a task not yet resolved against the data: its keys as given
        return {**extra, **sel.options}
    return {"type": sel.type, **extra, **CONVERTER.unstructure(sel.options)}


def resolved_dict(config: Config) -> dict[str, Any]:
    """The fully resolved config (every default filled in), as saved with each run."""
    out: dict[str, Any] = {
        "data": _selected_dict(config.data),
        "backbone": _selected_dict(config.backbone),
        "privileged": _selected_dict(config.privileged.encoder, fusion=config.privileged.fusion),
        "distillation": {
            "alpha": config.distillation.alpha,
            "losses": [_selected_dict(w.loss, weight=w.weight) for w in config.distillation.losses],
        },
        "train": CONVERTER.unstructure(config.train),
        "output": CONVERTER.unstructure(config.output),
    }
    if config.task is not None:
        out["task"] = _selected_dict(config.task)
    if config.teacher is not None:
        out["teacher"] = _selected_dict(config.teacher)
    if config.plugins:
        out["plugins"] = list(config.plugins)
    if config.controls:
        out["controls"] = list(config.controls)
    return json.loads(json.dumps(out))  # plain YAML types: tuples become lists


# ---------------------------------------------------------------- files and overrides

def read_yaml(path: str | Path) -> Any:
    """The YAML file at ``path`` (``{}`` if empty); one-line BlendError if missing or not YAML.

    A command that reads a config also protects its folder (``blend_core.rundir.protect``):
    that is the command's job, not the reader's, so that the config sits below the run directory.
    """
    path = Path(path)
    if path.is_dir():
        raise BlendError(f"{path}: is a directory; expected a YAML config file")
    if not path.is_file():
        raise BlendError(f"{path}: config file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BlendError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise BlendError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_yaml(text, str(path)) or {}


#: the component kind a ``type:`` key picks, by the section holding it (``distillation.losses.N`` too)
_SECTION_KINDS = {"data": "data source", "task": "task", "backbone": "backbone", "teacher": "backbone",
                  "privileged": "encoder", "distillation": "distillation loss"}
#: keys of a section that belong to the section, not to the component its ``type:`` picks
_SECTION_KEYS = {"privileged": ("fusion",), "distillation": ("alpha", "losses", "weight")}


def _switch_type(node: dict[str, Any], path: list[str], new: Any, registry: Registry | None,
                 notes: list[str] | None) -> None:
    """A ``--set SECTION.type=NEW`` that changes the type: drop the keys NEW does not have
    (they configured the old type), so that ``--set backbone.type=gru`` works on an NDT config."""
    kind = _SECTION_KINDS.get(path[0])
    if registry is None or kind is None or node.get("type") == new or not isinstance(new, str):
        return
    component = registry.components.get(kind, {}).get(new)
    if component is None:  # an unknown type: build_config names it with the choices
        return
    keep = {a.name for a in attrs.fields(component.config_cls)} | {"type", *_SECTION_KEYS.get(path[0], ())}
    dropped = [k for k in node if k not in keep]
    for key in dropped:
        del node[key]
    if dropped and notes is not None:
        where = ".".join(path)
        notes.append(f"--set {where}.type={new}: dropped {', '.join(f'{where}.{k}' for k in dropped)} "
                     f"(not options of {new!r})")


def apply_overrides(
    raw: dict[str, Any], overrides: list[str], registry: Registry | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides; values are parsed as YAML scalars.

    ``a.b.c=null`` drops the key (its default applies; ``--unset a.b.c`` is the same).
    With ``registry``, setting a section's ``type`` to another component drops the
    section's keys that the new component does not have; ``notes`` collects a line
    saying which.
    """
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise BlendError(f"--set {item!r}: expected KEY=VALUE, e.g. train.max_epochs=5")
        value = parse_yaml(text, f"--set {short_repr(item)}")
        set_key(raw, key.strip(), value, f"--set {item!r}", registry=registry, notes=notes)
    return raw


def set_key(raw: dict[str, Any], key: str, value: Any, where: str, *, registry: Registry | None = None,
            notes: list[str] | None = None) -> None:
    """Set the dotted ``key`` of ``raw`` to ``value``, in place: the one setter behind ``--set`` and
    a sweep's ``params``.

    Numeric parts index lists; missing sections are created; ``None`` drops the key (its
    default applies). With ``registry``, a section's ``type`` set to another component drops
    the section's keys that component lacks (``notes`` says which). ``where`` starts each error line.
    """
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise BlendError(f"{where}: {'.'.join(parts[:i])} is not a section")
        if value is None and not isinstance(node.get(part), (dict, list)):
            return  # dropping a key that is not there: nothing to do
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        if value is None:
            node.pop(int(last))
        else:
            node[int(last)] = value
    elif isinstance(node, dict):
        if value is None:
            node.pop(last, None)
            return
        if last == "type" and len(parts) > 1:
            _switch_type(node, parts[:-1], value, registry, notes)
        node[last] = value
    else:
        raise BlendError(f"{where}: {'.'.join(parts[:-1])} is not a section")


def override_sources(problems: list[str], overrides: list[str], source: str | None) -> list[str | None]:
    """For each ``path: problem`` line, where it came from: the ``--set`` that gave that key
    (``--set KEY=VALUE (command line)``), else ``source`` (the config file)."""
    keys = [(item.partition("=")[0].strip(), item) for item in overrides]
    out: list[str | None] = []
    for problem in problems:
        path = problem.split(": ", 1)[0]
        given = [item for key, item in keys if path == key or path.startswith(key + ".")]
        out.append(f"--set {given[-1]} (command line)" if given else source)
    return out


def load_config(path: str | Path, registry: Registry, overrides: list[str] = ()) -> Config:
    raw = read_yaml(path)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, list(overrides))
    return build_config(raw, registry, source=str(path))
