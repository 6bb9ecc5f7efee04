"""YAML configuration: strict, typed, with every problem reported at once by its path."""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import yaml
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from blend_core.errors import BlendError, ConfigError
from blend_core.registry import Registry

SECTIONS = ("data", "task", "backbone", "privileged", "distillation", "train", "output")


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Optimisation budget and schedule, shared by teacher, student and baseline."""

    max_epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 5e-5
    warmup_steps: int = 100
    grad_clip: float = 200.0
    patience: int = 50
    eval_every: int = 1
    checkpoint_every: int = 50
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = None  #: CPU threads for torch (None: torch's default); 1 is fastest for tiny models
    compile: bool = False  #: torch.compile the model (pays off on GPU for long runs)
    progress: bool = True


@attrs.frozen(kw_only=True)
class OutputConfig:
    dir: str = "runs/blend"
    overwrite: bool = False


@attrs.frozen(kw_only=True)
class Selected:
    """A component chosen by ``type:`` and its typed options."""

    type: str
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
    backbone: Selected
    privileged: PrivilegedConfig
    distillation: DistillationConfig
    train: TrainConfig
    output: OutputConfig
    plugins: tuple[str, ...] = ()


# ---------------------------------------------------------------- structuring

class _Mismatch(Exception):
    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {value!r}")


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


def _unknown_key(path: str, key: str, allowed: list[str]) -> str:
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
        if isinstance(exc, _Mismatch):
            out.append(f"{where}: {exc}")
        elif isinstance(exc, KeyError):
            out.append(f"{where}{'.' if where else ''}{exc.args[0]}: required key missing")
        elif typing.get_origin(tp) is Literal:
            out.append(f"{where}: expected {_type_name(tp)}")
        else:
            out.append(f"{where}: expected {_type_name(tp)} ({exc})")


def structure(data: Any, cls: type, path: str, problems: list[str]) -> Any:
    """Structure ``data`` into ``cls``, appending ``path``-prefixed problems on failure."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{path.rstrip('.')}: expected a mapping, got {data!r}")
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
        problems.append(f"{section}: expected a mapping with 'type', got {raw!r}")
        return None
    options = {k: v for k, v in raw.items() if k != "type" and k not in reserved}
    name = raw.get("type")
    if name is None:
        problems.append(
            f"{section}.type: required key missing; available: {', '.join(registry.names(kind))}"
        )
        return None
    if not isinstance(name, str):
        problems.append(f"{section}.type: expected str, got {name!r}")
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
        problems.append(f"distillation: expected a mapping, got {raw!r}")
        return None
    alpha = raw.get("alpha", 0.5)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        problems.append(f"distillation.alpha: expected a float in [0, 1], got {alpha!r}")
    if "type" in raw and "losses" in raw:
        problems.append("distillation: give either 'type' (one loss) or 'losses' (a list), not both")
        return None
    if "losses" in raw:
        items = raw["losses"]
        if not isinstance(items, list) or not items:
            problems.append(f"distillation.losses: expected a non-empty list, got {items!r}")
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
            problems.append(f"{path}.weight: expected float, got {weight!r}")
            continue
        chosen = _select(item, path, "distillation loss", registry, problems, ("weight",))
        if chosen is not None:
            losses.append(WeightedLoss(loss=chosen, weight=float(weight)))
    return DistillationConfig(alpha=float(alpha), losses=tuple(losses))


def build_config(raw: Any, registry: Registry, source: str | None = None) -> Config:
    """Validate a parsed YAML mapping against the registry; raise one ConfigError listing all problems."""
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a mapping of sections, got {type(raw).__name__}"], source)
    problems: list[str] = []
    for key in raw:
        if key not in SECTIONS and key != "plugins":
            problems.append(_unknown_key("", str(key), [*SECTIONS, "plugins"]))
    for key in ("data", "backbone"):
        if key not in raw:
            problems.append(f"{key}: required section missing")
    data = _select(raw["data"], "data", "data source", registry, problems) if "data" in raw else None
    task = (
        _select(raw["task"], "task", "task", registry, problems) if raw.get("task") is not None else None
    )
    backbone = (
        _select(raw["backbone"], "backbone", "backbone", registry, problems)
        if "backbone" in raw else None
    )
    praw = raw.get("privileged", DEFAULTS["privileged"])
    encoder = _select(praw, "privileged", "encoder", registry, problems, ("fusion",))
    fusion = praw.get("fusion", "concat") if isinstance(praw, dict) else "concat"
    if fusion not in ("concat", "add"):
        problems.append(f"privileged.fusion: expected one of 'concat', 'add', got {fusion!r}")
    distillation = _distillation(raw.get("distillation", DEFAULTS["distillation"]), registry, problems)
    train = structure(raw.get("train"), TrainConfig, "train.", problems)
    output = structure(raw.get("output"), OutputConfig, "output.", problems)
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        problems.append(f"plugins: expected a list of plugin names, got {plugins!r}")
    if problems:
        raise ConfigError(problems, source)
    return Config(
        data=data, task=task, backbone=backbone,
        privileged=PrivilegedConfig(encoder=encoder, fusion=fusion),
        distillation=distillation, train=train, output=output, plugins=tuple(plugins),
    )


def _selected_dict(sel: Selected | None, **extra: Any) -> dict[str, Any] | None:
    if sel is None:
        return None
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
    if config.plugins:
        out["plugins"] = list(config.plugins)
    return json.loads(json.dumps(out))  # plain YAML types: tuples become lists


# ---------------------------------------------------------------- files and overrides

def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise BlendError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise BlendError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides; values are parsed as YAML scalars."""
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise BlendError(f"--set {item!r}: expected KEY=VALUE, e.g. train.max_epochs=5")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise BlendError(f"--set {item!r}: value is not valid YAML") from None
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise BlendError(f"--set {item!r}: {'.'.join(parts[:i])} is not a section")
            node = node.setdefault(part, {})
        if isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
            node[int(parts[-1])] = value
        elif isinstance(node, dict):
            node[parts[-1]] = value
        else:
            raise BlendError(f"--set {item!r}: {'.'.join(parts[:-1])} is not a section")
    return raw


def load_config(path: str | Path, registry: Registry, overrides: list[str] = ()) -> Config:
    raw = read_yaml(path)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, list(overrides))
    return build_config(raw, registry, source=str(path))
