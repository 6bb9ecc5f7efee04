"""A finished run in Python: ``load_run(RUN_DIR)`` and predictions from arrays.

What ``scvi``'s ``Model.load(dir)`` and CEBRA's ``transform`` give their users::

    from blend_core.api import load_run
    run = load_run("runs/demo")            # a run, a --seeds run (every seed), or load_run(d, seed=1)
    run.input_shape                        # (None, 40, 40): (trials, bins, held-in neurons)
    out = run.predict(spikes)              # {"rates": (trials, bins, all neurons), "latents": ...}
    run.metrics["student"]["co-bps"], run.config["train"]["lr"]

The model is rebuilt from the run's ``config.yaml`` and the role's checkpoint (data
only: no code runs from it). Building it needs the run's data source once (its
shape: neuron counts, bins), as ``blend predict`` does; ``predictions(data_path=...)``
runs the model over other sessions of that layout, for any task (for neuron identity:
embeddings and predicted labels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from blend_core.errors import BlendError

#: roles that see spikes only: what predict() can run (the teacher also needs behavior)
SPIKES_ONLY = ("student", "baseline", "control_student")


def seed_dirs(run_dir: Path) -> list[Path]:
    """The ``seed-N`` runs of a ``--seeds`` run directory, by seed; [] for a single run."""
    found = [p for p in Path(run_dir).glob("seed-*") if p.name[5:].isdigit() and (p / "config.yaml").exists()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    try:
        return json.loads(path.read_text())
    except OSError:
        raise BlendError(f"{path}: not found; is {run_dir} a finished blend run directory?") from None
    except ValueError as exc:
        raise BlendError(f"{path}: not valid JSON ({exc})") from None


class _Built:
    """The run's config, plugins, data source, task: what every seed of one run shares."""

    def __init__(self, run_dir: Path, data_path: str | None, plugins: Any, device: str) -> None:
        from blend_core.build import build_task, load_data, resolve_task
        from blend_core.config import build_config, read_yaml
        from blend_core.plugins import load_plugins
        from blend_core.rundir import protect

        path = run_dir / "config.yaml"
        if not path.exists():
            raise BlendError(f"{path}: not found; is {run_dir} a finished blend run directory?")
        raw = read_yaml(path)
        protect(path)  # the run being loaded is never an output folder
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            raise BlendError(f"{path}: not a blend run config (no 'data' section)")
        self.raw = raw
        if data_path is not None:
            if "path" not in raw["data"]:
                raise BlendError(f"data_path: data source {raw['data']['type']!r} reads no files (no data.path)")
            raw = {**raw, "data": {**raw["data"], "path": str(data_path)}}
        named = list(raw.get("plugins", []))
        if plugins is None or any(not plugins.manager.has_plugin(n) for n in named):
            plugins = load_plugins(named)
        self.plugins = plugins
        self.config = build_config(raw, plugins.registry, source=str(path))
        self.device = torch.device(device)
        self.source, self.data = load_data(self.config, plugins.registry)
        self.config = resolve_task(self.config, plugins.registry, self.data)
        self.task = build_task(self.config, plugins.registry, self.data, self.device)

    def model(self, run_dir: Path, role: str):
        from blend_core.build import build_model
        from blend_core.io import load_checkpoint

        if role not in SPIKES_ONLY:
            raise BlendError(f"role {role!r}: expected one of {', '.join(SPIKES_ONLY)} (the teacher needs behavior)")
        checkpoint = run_dir / "checkpoints" / f"{role}.pt"
        if not checkpoint.exists():
            raise BlendError(f"{checkpoint}: not found; is {run_dir} a finished run with a {role}?")
        state = load_checkpoint(checkpoint, self.device, required=("model",))["model"]
        model = build_model(self.config, self.plugins.registry, self.task, privileged=False).to(self.device)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise BlendError(f"{checkpoint}: does not fit the model of {run_dir / 'config.yaml'} "
                             f"({str(exc).splitlines()[0]})") from None
        return model.eval()


class LoadedRun:
    """One trained run: ``config`` (the resolved config, as saved), ``metrics`` (metrics.json),
    ``input_shape`` and ``predict``. Built by :func:`load_run`."""

    def __init__(self, run_dir: Path, built: _Built, role: str) -> None:
        self.run_dir, self.role, self._built = Path(run_dir), role, built
        import yaml

        self.config: dict[str, Any] = yaml.safe_load((self.run_dir / "config.yaml").read_text())
        self.metrics: dict[str, Any] = _read_metrics(self.run_dir)
        self.model = built.model(self.run_dir, role)

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.run_dir)!r}, role={self.role!r}, input_shape={self.input_shape})"

    @property
    def input_shape(self) -> tuple[None, int, int] | None:
        """``(None, bins, held-in neurons)``: what :meth:`predict` takes (any number of trials);
        None for a task that does not take spike arrays (use :meth:`predictions`)."""
        task = self._built.task
        if not hasattr(task, "window") or not hasattr(task, "n_in"):
            return None
        return (None, int(task.window), int(task.n_in))

    def _check(self, spikes: Any) -> torch.Tensor:
        shape = self.input_shape
        if shape is None:
            raise BlendError(f"predict(spikes): this run's task ({type(self._built.task).__name__}) does not take "
                             "spike arrays; use predictions(data_path=...) for its outputs")
        x = torch.as_tensor(np.asarray(spikes.detach().cpu() if isinstance(spikes, torch.Tensor) else spikes),
                            dtype=torch.float32)
        _, bins, neurons = shape
        seq_len = self._built.task.dims.seq_len
        if x.ndim != 3:
            raise BlendError(f"spikes: expected a (trials, bins, held-in neurons) array of shape (N, {bins}, {neurons}), "
                             f"got shape {tuple(x.shape)}")
        if x.shape[2] != neurons:
            raise BlendError(f"spikes: expected {neurons} held-in neurons (the run's data; axis 2), got {x.shape[2]}")
        if x.shape[1] not in (bins, seq_len):
            also = f" or {seq_len} (with the forward bins, ignored)" if seq_len != bins else ""
            raise BlendError(f"spikes: expected {bins} time bins{also} (axis 1), got {x.shape[1]}")
        if not torch.isfinite(x).all() or (x < 0).any():
            raise BlendError("spikes: expected finite, non-negative spike counts")
        out = torch.zeros(x.shape[0], seq_len, neurons)
        out[:, :bins] = x[:, :bins]  # forward bins enter as zeros, as in training
        return out

    @torch.no_grad()
    def predict(self, spikes: Any, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Rates and latents of ``spikes`` (a ``(trials, bins, held-in neurons)`` array or tensor of counts).

        ``rates``: ``(trials, bins + forward bins, held-in + held-out neurons)``, expected
        counts per bin; ``latents``: the backbone's last features per bin.
        """
        from blend_core.model import Inputs

        x = self._check(spikes).to(self._built.device)
        rates, latents = [], []
        for chunk in x.split(batch_size):
            out = self.model(Inputs(x=chunk, behavior=None))
            rates.append(out.log_rates.float().exp().cpu())
            latents.append((out.features[-1] if out.features else out.log_rates).float().cpu())
        return {"rates": torch.cat(rates).numpy(), "latents": torch.cat(latents).numpy()}

    def predictions(self, data_path: str | None = None) -> dict[str, np.ndarray]:
        """The task's own predictions (what ``blend predict`` writes) on the run's data or on
        ``data_path`` (other sessions of the same layout): rates and latents, or for neuron
        identity each neuron's embedding and predicted labels."""
        built = self._built if data_path is None else _Built(self.run_dir, data_path, self._built.plugins,
                                                             str(self._built.device))
        model = self.model if data_path is None else built.model(self.run_dir, self.role)
        return built.task.predict(model)


class LoadedSeeds:
    """A ``--seeds`` run: one :class:`LoadedRun` per seed (``runs``, ``seed(k)``), the seeds'
    ``summary`` (mean ± sd), and ``predict`` stacking every seed's output on a leading axis."""

    def __init__(self, runs: Sequence[LoadedRun], run_dir: Path) -> None:
        self.runs, self.run_dir = list(runs), Path(run_dir)
        self.config = self.runs[0].config
        self.metrics = {p.name: r.metrics for p, r in zip(seed_dirs(run_dir), self.runs)}
        summary = self.run_dir / "summary.json"
        self.summary: dict[str, Any] = json.loads(summary.read_text()) if summary.exists() else {}
        self.input_shape = self.runs[0].input_shape

    def __repr__(self) -> str:
        return f"LoadedSeeds({str(self.run_dir)!r}, seeds={len(self.runs)}, input_shape={self.input_shape})"

    def seed(self, seed: int) -> LoadedRun:
        for run in self.runs:
            if run.run_dir.name == f"seed-{seed}":
                return run
        raise BlendError(f"seed {seed}: not in {self.run_dir} (seeds: "
                         f"{', '.join(r.run_dir.name[5:] for r in self.runs)})")

    def predict(self, spikes: Any, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Each seed's :meth:`LoadedRun.predict`, stacked: ``rates`` is ``(seeds, trials, bins, neurons)``."""
        outs = [run.predict(spikes, batch_size) for run in self.runs]
        return {k: np.stack([o[k] for o in outs]) for k in outs[0]}


def load_run(run_dir: str | Path, *, seed: int | None = None, role: str = "student",
             device: str = "cpu", plugins: Any = None) -> LoadedRun | LoadedSeeds:
    """Load a finished run's ``role`` (default: the student) for prediction.

    On a ``--seeds`` run directory it returns every seed (:class:`LoadedSeeds`), or with
    ``seed=k`` that seed's :class:`LoadedRun`. The data source is loaded once, for its layout.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BlendError(f"{run_dir}: no such run directory")
    seeds = seed_dirs(run_dir) if not (run_dir / "config.yaml").exists() else []
    if seed is not None:
        if not seeds:
            raise BlendError(f"seed={seed}: {run_dir} is not a --seeds run (no seed-N folders)")
        wanted = run_dir / f"seed-{seed}"
        if wanted not in seeds:
            raise BlendError(f"seed {seed}: not in {run_dir} (seeds: {', '.join(p.name[5:] for p in seeds)})")
        seeds = [wanted]
    if not seeds:
        return LoadedRun(run_dir, _Built(run_dir, None, plugins, device), role)
    built = _Built(seeds[0], None, plugins, device)  # the seeds share data and layout: loaded once
    runs = [LoadedRun(d, built, role) for d in seeds]
    return runs[0] if seed is not None else LoadedSeeds(runs, run_dir)
