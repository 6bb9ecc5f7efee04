"""Synthetic sessions in the Bugeon et al. layout (method.md §6), for tests, docs and demos. No torch here.

Generative assumptions (stated plainly: an effect on data built for it says
nothing about real recordings):

- Per session: running speed (bouts from a two-state Markov chain, smoothed),
  pupil size (slow, partly following running), a shared population factor and
  a few spatially local factors (Gaussian fields ~50 µm wide), all z-scored.
- Each neuron's drive is ``baseline + g_run·run + g_pupil·pupil + c·shared +
  local + noise``; activity is a calcium-like leaky integration (decay ``ρ``)
  of ``softplus(drive)`` plus observation noise. ``g_run, g_pupil, c, ρ`` are
  type-specific with per-neuron jitter, following Bugeon et al.'s qualitative
  findings: Vip cells are driven by running, Sst cells suppressed by it,
  Lamp5 follow pupil/arousal, Pvalb follow the population, Sncg are driven by
  running and suppressed by pupil; excitatory cells are mildly modulated.
- Gene counts are Poisson with type markers (``Slc17a7``, ``Gad1``, one per
  subclass) ~20× above background.

Behavior therefore carries information about identity that a model sees only
indirectly through the population: the situation BLEND's teacher is for.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np

from blend_spatial.anndata_source import SUBCLASSES, LayoutConfig, SplitConfig, assemble, read_session, _read_h5ad
from blend_spatial.data import NeuronIdentityData

#: type -> (g_run, g_pupil, population coupling, calcium decay per frame)
TYPE_PARAMS: dict[str, tuple[float, float, float, float]] = {
    "EC": (0.4, 0.2, 1.0, 0.70),
    "Lamp5": (0.1, 1.2, 0.4, 0.90),
    "Pvalb": (0.6, 0.0, 1.6, 0.50),
    "Sncg": (0.9, -0.9, 0.2, 0.60),
    "Sst": (-1.2, 0.4, 0.5, 0.80),
    "Vip": (1.6, 0.6, 0.3, 0.85),
}
MARKERS = ("Slc17a7", "Gad1", *SUBCLASSES)


@attrs.frozen(kw_only=True, slots=False)  # a mixin: combined by data source configs
class SyntheticSpatialConfig:
    n_subjects: int = 3  #: named SB026, SB027, ... (the last, SB028 by default, is held out)
    sessions_per_subject: int = 2
    neurons_per_session: int = 120
    n_frames: int = 1500
    frame_rate: float = 4.0  #: Hz
    inhibitory_fraction: float = 0.4  #: share of IN cells, spread evenly over the five subclasses
    n_genes: int = 72
    fov_um: float = 400.0  #: side of the square field of view
    behavior_effect: float = 1.0  #: scales every type's running and pupil gains
    population_effect: float = 1.0  #: scales every type's coupling to the shared population factor
    jitter: float = 0.25  #: per-neuron relative spread of the type parameters
    noise: float = 0.3  #: drive noise (the observation noise is a third of it)
    seed: int = 0


def _ou(rng: np.random.Generator, n: int, tau_frames: float, size: tuple[int, ...] = ()) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck samples along the last axis."""
    from scipy.signal import lfilter

    rho = np.exp(-1.0 / tau_frames)
    eps = rng.normal(size=(*size, n)) * np.sqrt(1 - rho**2)
    x = lfilter([1.0], [1.0, -rho], eps, axis=-1)
    return (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True).clip(1e-6)


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(x.std(), 1e-6)


def _behavior(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import gaussian_filter1d

    state = np.zeros(n, bool)
    p_start, p_stop = 1.0 / (20 * rate), 1.0 / (10 * rate)  # ~20 s still, ~10 s running on average
    for t in range(1, n):
        flip = rng.random() < (p_stop if state[t - 1] else p_start)
        state[t] = state[t - 1] ^ flip
    speed = state * rng.uniform(10, 30) * (1 + 0.3 * _ou(rng, n, 5 * rate))
    speed = gaussian_filter1d(np.clip(speed, 0, None), rate)  # cm/s
    pupil = 0.6 * _zscore(gaussian_filter1d(speed, 3 * rate)) + 0.8 * _ou(rng, n, 15 * rate)
    pupil = 1.5 + 0.3 * _zscore(pupil)  # mm
    return speed.astype(np.float32), pupil.astype(np.float32)


def _types(rng: np.random.Generator, n: int, inhibitory_fraction: float) -> np.ndarray:
    n_in = int(round(inhibitory_fraction * n))
    types = np.array(["EC"] * (n - n_in) + [SUBCLASSES[i % len(SUBCLASSES)] for i in range(n_in)], dtype=object)
    return rng.permutation(types)


def session(config: SyntheticSpatialConfig, subject: str, name: str, rng: np.random.Generator) -> Any:
    """One session as an AnnData in the method.md §6 layout."""
    from scipy.signal import lfilter

    n, F = config.neurons_per_session, config.n_frames
    types = _types(rng, n, config.inhibitory_fraction)
    speed, pupil = _behavior(rng, F, config.frame_rate)
    run_z, pupil_z = _zscore(speed), _zscore(pupil)
    shared = _ou(rng, F, 2 * config.frame_rate)
    xy = rng.uniform(0, config.fov_um, (n, 2))
    centers = rng.uniform(0, config.fov_um, (6, 2))
    weights = np.exp(-((xy[:, None] - centers[None]) ** 2).sum(-1) / (2 * 50.0**2))
    local = _ou(rng, F, 3 * config.frame_rate, (6,))

    params = np.array([TYPE_PARAMS[t] for t in types])
    jit = 1 + config.jitter * rng.normal(size=(n, 3))
    g_run = params[:, 0] * config.behavior_effect * jit[:, 0]
    g_pup = params[:, 1] * config.behavior_effect * jit[:, 1]
    coupling = params[:, 2] * config.population_effect * jit[:, 2]
    decay = np.clip(params[:, 3] + 0.05 * config.jitter * 4 * rng.normal(size=n), 0.2, 0.95)
    drive = (
        rng.normal(-0.5, 0.3, (n, 1)) + g_run[:, None] * run_z + g_pup[:, None] * pupil_z
        + coupling[:, None] * shared + 0.8 * weights @ local + config.noise * rng.normal(size=(n, F))
    )
    spikes = np.logaddexp(0, drive)
    calcium = np.stack([lfilter([1 - d], [1, -d], s) for d, s in zip(decay, spikes)])
    dff = calcium + config.noise / 3 * rng.normal(size=(n, F))

    return to_anndata(types, dff, xy, speed, pupil, frame_rate=config.frame_rate, n_genes=config.n_genes,
                      subject=subject, name=name, rng=rng)


def to_anndata(types: np.ndarray, dff: np.ndarray, xy: np.ndarray, speed: np.ndarray, pupil: np.ndarray, *,
               frame_rate: float, n_genes: int, subject: str, name: str, rng: np.random.Generator) -> Any:
    """One session in the method.md §6 layout: Poisson gene counts with type markers, labels, activity, behavior.

    Shared by every generator of this plugin, so that each writes exactly the layout the reader expects.
    """
    import anndata as ad
    import pandas as pd

    n, F = dff.shape
    genes = list(MARKERS) + [f"Gene{i:02d}" for i in range(n_genes - len(MARKERS))]
    rate = np.full((n, len(genes)), 0.5)
    is_in = types != "EC"
    rate[~is_in, 0] = rate[is_in, 1] = 10.0
    for j, sub in enumerate(SUBCLASSES):
        rate[types == sub, 2 + j] = 10.0
    counts = rng.poisson(rate).astype(np.float32)

    subclass = pd.Categorical([t if t != "EC" else np.nan for t in types], categories=list(SUBCLASSES))
    obs = pd.DataFrame({
        "ttype": [f"{t}-{rng.integers(1, 3)}" for t in types],
        "subclass": subclass,
        "ei_class": pd.Categorical(np.where(is_in, "IN", "EC"), categories=["EC", "IN"]),
        "subject": pd.Categorical([subject] * n),
        "session": pd.Categorical([name] * n),
        "depth": rng.uniform(100, 350, n).astype(np.float32),
    }, index=pd.Index([f"{name}_n{i:03d}" for i in range(n)]))
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.layers["counts"] = counts.copy()
    adata.obsm["spatial"] = xy.astype(np.float32)
    adata.obsm["activity"] = dff.astype(np.float32)
    adata.uns["frame_times"] = (np.arange(F) / frame_rate).astype(np.float64)
    adata.uns["behavior"] = {"running_speed": np.asarray(speed, np.float32), "pupil_size": np.asarray(pupil, np.float32)}
    return adata


def generate(config: Any, make_session: Callable[..., Any] | None = None) -> list[Any]:
    """All sessions, as AnnData objects (subjects SB026, SB027, ...; sessions SUBJECT_s0, ...).

    ``make_session(config, subject, name, rng)`` draws one session (default: this
    generator's :func:`session`); other generators reuse the naming and seeding.
    """
    make_session = make_session or session
    rng = np.random.default_rng(config.seed)
    out = []
    for i in range(config.n_subjects):
        subject = f"SB{26 + i:03d}"
        for j in range(config.sessions_per_subject):
            out.append(make_session(config, subject, f"{subject}_s{j}", rng))
    return out


#: ``uns`` key marking a file as written by this generator: only such files are ever replaced
MARK = "blend_synthetic"


def written_by_blend(path: Path) -> bool:
    """Whether ``path`` is an .h5ad file this generator wrote (it carries ``uns[MARK]``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f"uns/{MARK}" in f
    except (OSError, ValueError):
        return False


def write_dataset(config: SyntheticSpatialConfig, out_dir: str | Path) -> list[Path]:
    """Write one ``SESSION.h5ad`` per session into ``out_dir``, atomically (see ``write_sessions``)."""
    return write_sessions(generate(config), out_dir, seed=config.seed)


def write_sessions(sessions: list[Any], out_dir: str | Path, *, seed: int) -> list[Path]:
    """Write AnnData sessions as ``SESSION.h5ad`` into ``out_dir``, atomically.

    An existing file of the same name is replaced only if a generator of this plugin wrote it;
    any other file (a user's recording) is refused before anything is written.
    """
    from blend_core.api import DataError, atomic_write

    out_dir = Path(out_dir)
    paths = [out_dir / f"{a.obs['session'].iloc[0]}.h5ad" for a in sessions]
    for path in paths:
        if path.exists() and not written_by_blend(path):
            raise DataError(f"{path}: exists and was not written by blend's synthetic generator; refusing to replace it "
                            "(choose another data.write_dir, or move the file)")
    for adata, path in zip(sessions, paths):
        adata.uns[MARK] = {"seed": seed}
        atomic_write(path, adata.write_h5ad)
    return paths


@attrs.frozen(kw_only=True)
class SyntheticSourceConfig(SyntheticSpatialConfig, SplitConfig):
    #: write the sessions as .h5ad files here and read them back through the AnnData reader; "" keeps them in memory
    write_dir: str = ""


@attrs.define
class SyntheticSpatialSource:
    """The ``spatial_synthetic`` data source: generated sessions in the default layout."""

    config: SyntheticSourceConfig
    _data: NeuronIdentityData | None = attrs.field(default=None, init=False)

    def load(self) -> NeuronIdentityData:
        if self._data is not None:
            return self._data
        layout = LayoutConfig()
        gen = SyntheticSpatialConfig(**{f.name: getattr(self.config, f.name) for f in attrs.fields(SyntheticSpatialConfig)})
        if self.config.write_dir:
            paths = write_dataset(gen, self.config.write_dir)
            sessions = [read_session(_read_h5ad(p), str(p), layout, stem=p.stem) for p in paths]
        else:
            sessions = [read_session(a, f"synthetic session {a.obs['session'].iloc[0]}", layout,
                                     stem=a.obs["session"].iloc[0], keep=True) for a in generate(gen)]
        self._data = assemble(sessions, layout, self.config, name="spatial_synthetic")
        return self._data

    def write_predictions(self, predictions: dict[str, Any], out_dir: Path) -> list[Path]:
        from blend_spatial.output import write_h5ad

        return write_h5ad(self.load(), {"student": predictions}, Path(out_dir))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m blend_spatial.synthetic",
                                description="write synthetic sessions (.h5ad, method.md §6 layout)")
    p.add_argument("out_dir", type=Path)
    for field in attrs.fields(SyntheticSpatialConfig):
        p.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = p.parse_args(argv)
    config = SyntheticSpatialConfig(**{f.name: getattr(args, f.name) for f in attrs.fields(SyntheticSpatialConfig)})
    for path in write_dataset(config, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
