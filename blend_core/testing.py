"""Conformance kit for backbones: what every backbone plugin must satisfy.

Third-party authors call it from their own tests (all names are in ``blend_core.api``)::

    from blend_core.api import check_backbone

    def test_my_backbone():
        check_backbone(build_mine, MyConfig(width=8))

or run every backbone a registry knows about; ``plugin_registry`` builds the registry
of the built-ins plus the named plugins (entry-point names or modules), with
autoloading off so that other installed plugins cannot interfere::

    @pytest.mark.parametrize("name, config, factory", backbone_cases(plugin_registry("gru")))
    def test_conforms(name, config, factory):
        check_backbone(factory, config)

``check_task`` checks a built task against the task contract, and ``run_blend``
runs the ``blend`` command line in-process (for end-to-end tests of a plugin).

Each check raises ``AssertionError`` saying which contract clause failed.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from blend_core.model import ModelDims, ModelOutput

__all__ = [
    "BackboneCheckError", "backbone_cases", "check_backbone", "check_task", "installed_plugin", "plugin_registry",
    "run_blend",
]


class BackboneCheckError(AssertionError):
    """A backbone breaks the contract; the message names the check."""


def _require(ok: bool, check: str, detail: str) -> None:
    if not ok:
        raise BackboneCheckError(f"[{check}] {detail}")


def _spikes(generator: torch.Generator, trials: int, seq_len: int, width: int) -> torch.Tensor:
    x = torch.poisson(torch.full((trials, seq_len, width), 1.0), generator=generator)
    x[:, -max(1, seq_len // 4):] = 0.0  # forward bins enter as zeros
    return x


def _run(model: nn.Module, x: torch.Tensor, context: torch.Tensor | None) -> ModelOutput:
    out = model(x, context=context)
    _require(isinstance(out, ModelOutput), "returns ModelOutput",
             f"forward returned {type(out).__name__}, expected blend_core.model.ModelOutput")
    return out


def check_backbone(
    factory: Callable[[Any, ModelDims], nn.Module],
    config: Any,
    *,
    input_dim: int = 7,
    output_dim: int = 9,
    seq_len: int = 10,
    context_dim: int = 3,
    trials: int = 3,
    seed: int = 0,
    atol: float = 1e-5,
    allow_no_grad: Iterable[str] = (),
) -> None:
    """Check that ``factory(config, dims)`` builds a backbone honouring the contract.

    Checks, in order: output type, ``log_rates`` shape/dtype/finiteness,
    ``features`` against ``feature_dims``, ``losses`` are finite scalars,
    gradients from ``log_rates`` reach every trainable parameter (except names
    in ``allow_no_grad``), the input is not modified, eval mode is
    deterministic, trials are independent in eval mode, batch size 1 works,
    and, with ``context_dim > 0``, the context changes the output while
    ``context=None`` is still accepted. Gradients are taken in train mode (so
    posterior-variance paths of VAEs count); everything else in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dims = ModelDims(input_dim=input_dim, output_dim=output_dim, seq_len=seq_len, context_dim=context_dim)
    model = factory(config, dims)
    _require(isinstance(model, nn.Module), "is nn.Module", f"factory returned {type(model).__name__}")
    feature_dims = getattr(model, "feature_dims", None)
    _require(feature_dims is not None, "feature_dims", "the module has no `feature_dims` attribute")
    feature_dims = tuple(feature_dims)
    _require(all(isinstance(w, int) and w > 0 for w in feature_dims), "feature_dims",
             f"feature_dims must be positive ints, got {feature_dims!r}")

    x = _spikes(gen, trials, seq_len, input_dim)
    ctx = torch.randn(trials, seq_len, context_dim, generator=gen) if context_dim else None

    # -- train mode: shapes, losses, gradients ------------------------------------------
    model.train()
    x_before = x.clone()
    out = _run(model, x, ctx)
    _require(torch.equal(x, x_before), "input untouched", "forward modified its input x in place")
    expected = (trials, seq_len, output_dim)
    _require(tuple(out.log_rates.shape) == expected, "log_rates shape",
             f"expected {expected}, got {tuple(out.log_rates.shape)}")
    _require(out.log_rates.dtype == x.dtype, "log_rates dtype",
             f"expected {x.dtype} for {x.dtype} input, got {out.log_rates.dtype}")
    _require(bool(torch.isfinite(out.log_rates).all()), "finite log_rates", "log_rates contain NaN or inf")
    _check_features(out, feature_dims, trials, seq_len)
    for name, value in out.losses.items():
        _require(isinstance(value, torch.Tensor) and value.dim() == 0, "losses are scalars",
                 f"loss term {name!r} is not a 0-dim tensor")
        _require(bool(torch.isfinite(value)), "finite losses", f"loss term {name!r} is {value.item()}")

    weights = torch.randn(out.log_rates.shape, generator=gen)  # a random projection avoids symmetric cancellation
    (out.log_rates * weights).sum().backward()
    allowed = set(allow_no_grad)
    missing = [
        name for name, p in model.named_parameters()
        if p.requires_grad and p.numel() and name not in allowed
        and (p.grad is None or not bool(p.grad.ne(0).any()))
    ]
    _require(not missing, "gradients reach parameters",
             f"no gradient from log_rates reaches: {', '.join(missing)} "
             "(pass allow_no_grad=[...] if a parameter is trained only through `losses`)")
    model.zero_grad(set_to_none=True)

    # -- eval mode: determinism, batch independence, batch size 1, context ----------------
    model.eval()
    with torch.no_grad():
        first = _run(model, x, ctx).log_rates
        again = _run(model, x, ctx).log_rates
        _require(torch.equal(first, again), "eval determinism",
                 "two eval-mode passes on the same input differ (sampling or dropout left on in eval?)")
        _require(bool(torch.isfinite(first).all()), "finite log_rates", "eval-mode log_rates contain NaN or inf")
        single = _run(model, x[:1], None if ctx is None else ctx[:1])
        _require(tuple(single.log_rates.shape) == (1, seq_len, output_dim), "batch size 1",
                 f"expected {(1, seq_len, output_dim)}, got {tuple(single.log_rates.shape)}")
        _check_features(single, feature_dims, 1, seq_len)
        _close(single.log_rates[0], first[0], atol, "batch independence",
               "trial 0's output changes when it is run alone instead of in a batch")
        order = torch.arange(trials - 1, -1, -1)
        flipped = _run(model, x[order], None if ctx is None else ctx[order]).log_rates
        _close(flipped, first[order], atol, "batch independence",
               "reordering the trials of a batch changes their outputs")
        if trials > 1:
            other = x.clone()
            other[1:] = _spikes(gen, trials - 1, seq_len, input_dim)
            changed = _run(model, other, ctx).log_rates
            _close(changed[0], first[0], atol, "batch independence",
                   "trial 0's output depends on the other trials' inputs")

        if context_dim:
            ctx2 = torch.randn(ctx.shape, generator=gen) * 3.0
            moved = _run(model, x, ctx2).log_rates
            _require(not torch.allclose(moved, first, atol=atol), "context is used",
                     "changing `context` leaves log_rates unchanged; with dims.context_dim > 0 a learned "
                     "projection of it must enter the backbone")
            no_ctx = _run(model, x, None).log_rates
            _require(tuple(no_ctx.shape) == expected, "context optional",
                     "forward(x, context=None) must work for a backbone built with context_dim > 0")


def _check_features(out: ModelOutput, feature_dims: tuple[int, ...], trials: int, seq_len: int) -> None:
    features = tuple(out.features)
    _require(len(features) == len(feature_dims), "features match feature_dims",
             f"{len(features)} features returned but feature_dims has {len(feature_dims)} entries")
    for i, (feat, width) in enumerate(zip(features, feature_dims)):
        shape = tuple(feat.shape)
        _require(shape[:1] == (trials,) and shape[-1:] == (width,), "features match feature_dims",
                 f"feature {i} has shape {shape}; expected ({trials}, ..., {width})")
        if len(shape) == 3:
            _require(shape[1] == seq_len, "features match feature_dims",
                     f"feature {i} has {shape[1]} bins, expected {seq_len}")
        _require(bool(torch.isfinite(feat).all()), "finite features", f"feature {i} contains NaN or inf")


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, check: str, detail: str) -> None:
    if not torch.allclose(a, b, atol=atol, rtol=1e-4):
        diff = (a - b).abs().max().item()
        raise BackboneCheckError(f"[{check}] {detail} (max abs difference {diff:.3g})")


def backbone_cases(registry: Any, configs: dict[str, Any] | None = None) -> list[tuple[str, Any, Callable]]:
    """``(name, config, factory)`` for every backbone in ``registry``, for ``pytest.mark.parametrize``.

    ``configs`` maps a backbone name to the (small) config to test with; the
    others use their config class's defaults.
    """
    configs = configs or {}
    cases = []
    for name in registry.names("backbone"):
        component = registry.get("backbone", name)
        cases.append((name, configs.get(name, component.config_cls()), component.factory))
    return cases


def plugin_registry(*plugins: str) -> Any:
    """The component registry of blend's built-ins plus ``plugins`` (entry-point names or
    importable modules), loaded with autoloading off: what a plugin's tests should use.

    Raises ``PluginError`` if a plugin fails to load or register, so a broken plugin
    fails its own tests instead of being skipped with a warning.
    """
    from blend_core.errors import PluginError
    from blend_core.plugins import load_plugins

    loaded = load_plugins(list(plugins), autoload=False)
    if loaded.failures:
        raise PluginError("; ".join(loaded.failures))
    loaded.registry.check_conflicts()
    return loaded.registry


def run_blend(argv: Sequence[str]) -> int:
    """Run the ``blend`` command line in this process and return its exit code (use ``capsys``)."""
    from blend_core.cli import main

    return main(list(argv))


def check_task(task: Any, *, batch_size: int = 4, seed: int = 0) -> None:
    """Check a built task against the task contract (``blend_core.api.Task``).

    Checks the protocol's members, ``dims``, that ``train`` and ``val`` batches exist,
    that ``inputs`` gives an ``Inputs`` whose ``x`` is ``(batch, dims.seq_len, dims.input_dim)``
    (and ``behavior`` ``(batch, dims.seq_len, behavior_dim)`` when the task has behavior),
    that ``loss`` of a zero prediction is a finite scalar, and that ``refused_losses``
    maps loss names to reasons.
    """
    from blend_core.model import Inputs
    from blend_core.task import Task

    missing = [m for m in ("dims", "behavior_dim", "batches", "inputs", "loss", "evaluate", "predict")
               if not hasattr(task, m)]
    _require(isinstance(task, Task), "Task protocol", f"the task lacks {', '.join(missing)}")
    dims = task.dims
    _require(isinstance(dims, ModelDims), "dims", f"task.dims is a {type(dims).__name__}, expected ModelDims")
    _require(min(dims.input_dim, dims.output_dim, dims.seq_len) > 0, "dims", f"non-positive sizes in {dims}")
    refused = getattr(task, "refused_losses", {}) or {}
    _require(all(isinstance(k, str) and isinstance(v, str) and v for k, v in dict(refused).items()),
             "refused_losses", "refused_losses must map loss names to non-empty reasons")
    gen = torch.Generator().manual_seed(seed)
    for split in ("train", "val"):
        batch = next(iter(task.batches(split, batch_size, gen if split == "train" else None)), None)
        _require(batch is not None, "batches", f"no {split!r} batches")
        for g in (gen, None):
            inputs = task.inputs(batch, g)
            _require(isinstance(inputs, Inputs), "inputs", f"inputs returned {type(inputs).__name__}")
            n = inputs.x.shape[0]
            _require(tuple(inputs.x.shape) == (n, dims.seq_len, dims.input_dim), "inputs shape",
                     f"x has shape {tuple(inputs.x.shape)}, expected ({n}, {dims.seq_len}, {dims.input_dim})")
            if task.behavior_dim:
                b = inputs.behavior
                _require(b is not None and tuple(b.shape) == (n, dims.seq_len, task.behavior_dim),
                         "behavior shape", f"behavior is {None if b is None else tuple(b.shape)}, "
                         f"expected ({n}, {dims.seq_len}, {task.behavior_dim})")
            out = ModelOutput(log_rates=torch.zeros(n, dims.seq_len, dims.output_dim, device=inputs.x.device))
            loss = task.loss(out, batch, inputs)
            _require(isinstance(loss, torch.Tensor) and loss.dim() == 0 and bool(torch.isfinite(loss)),
                     "loss", f"loss of a zero prediction is {loss!r}, expected a finite scalar")


def installed_plugin(monkeypatch: Any, name: str, module: str) -> None:
    """Make ``module`` an installed plugin called ``name`` for one test, as if a package declared it
    in the ``blend`` entry-point group (use pytest's ``monkeypatch`` fixture)."""
    from importlib.metadata import EntryPoint

    import blend_core.plugins as plugins

    real = plugins.entry_points

    def entry_points(**kwargs: Any) -> list[EntryPoint]:
        found = list(real(**kwargs))
        if kwargs.get("group") == plugins.ENTRY_POINT_GROUP:
            found.append(EntryPoint(name=name, value=module, group=plugins.ENTRY_POINT_GROUP))
        return found

    monkeypatch.setattr(plugins, "entry_points", entry_points)
