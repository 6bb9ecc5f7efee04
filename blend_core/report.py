"""``blend report``: PNG figures and one HTML page (opens from disk) for a run, a ``--seeds`` run or a sweep.

Everything is read from the directory: ``metrics.json``, ``history.csv`` (or the
histories kept in ``checkpoints/``), ``report-data.npz`` (written by
``blend_core.builtin.report_data``), ``summary.json`` (``--seeds``),
``results.csv`` and ``sweep.yaml`` (``blend sweep``), and the neuron-identity
task's ``h5ad/`` outputs. A figure whose inputs are missing is left out with a
note on the page saying why. matplotlib draws with the Agg backend: no display.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from blend_core.builtin.tracking import read_history  # noqa: F401  (this module's API: figures read it)
from blend_core.errors import BlendError
from blend_core.files import refuse_link
from blend_core.roles import ROLE_ORDER  # display order, from the roles' records

INSTALL_HINT = "blend report needs matplotlib: pip install 'blend-core[report]' (or: pip install 'matplotlib>=3.7')"
#: metrics of the teacher that are not comparable: it is given behavior as input
TEACHER_SEES = ("vel R2",)


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise BlendError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Page:
    """The figures and notes of one report, written as PNGs beside ``index.html``."""

    def __init__(self, out_dir: Path, title: str) -> None:
        self.out_dir, self.title = out_dir, title
        self.sections: list[tuple[str, str]] = []  # (heading, html)
        self.figures: list[Path] = []

    def figure(self, name: str, heading: str, draw: Callable[[Any], Any], caption: str = "") -> None:
        """Draw one figure with ``draw(plt) -> fig``; a missing input (``Skip``) becomes a note."""
        from blend_core.io import atomic_write

        plt = _plt()
        try:
            fig = draw(plt)
        except Skip as why:
            self.note(heading, f"not drawn: {why}")
            return
        path = self.out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_')}.png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        self.figures.append(path)
        cap = f"<p class='cap'>{html.escape(caption)}</p>" if caption else ""
        self.sections.append((heading, f"<img src='{html.escape(path.name)}' alt='{html.escape(heading)}'>{cap}"))

    def html(self, heading: str, body: str) -> None:
        """A section of ready HTML (escaped by the caller)."""
        self.sections.append((heading, body))

    def note(self, heading: str, text: str) -> None:
        self.sections.append((heading, f"<p class='note'>{html.escape(text)}</p>"))

    def table(self, heading: str, header: list[str], rows: list[list[Any]], caption: str = "") -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<p class='cap'>{html.escape(caption)}</p>" if caption else ""
        self.sections.append((heading, f"<table><tr>{head}</tr>{body}</table>{cap}"))

    def write(self) -> Path:
        from blend_core.io import write_text

        style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
                 "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
                 "text-align:right}td:first-child,th:first-child{text-align:left}.note{color:#a60}"
                 ".cap{color:#555;font-size:90%}.warn{background:#fff4e0;border-left:4px solid #e08a00;"
                 "padding:4px 10px;margin:4px 0}.ref td{color:#555;font-style:italic}"
                 "pre{background:#f6f6f6;padding:8px;font-size:85%;overflow-x:auto}"
                 "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#555}dd{margin:0}")
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                 f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>"]
        parts += [f"<h2>{html.escape(h)}</h2>{body}" for h, body in self.sections]
        parts.append("</body></html>\n")
        return write_text(self.out_dir / "index.html", "\n".join(parts))


class Skip(Exception):
    """A figure's inputs are not in the directory; the message says which."""


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _ci(d: dict[str, Any]) -> str:
    if "ci_low" not in d:
        return _fmt(d.get("mean", ""))
    return f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def _roles(names) -> list[str]:
    names = list(names)
    return [r for r in ROLE_ORDER if r in names] + [r for r in names if r not in ROLE_ORDER]


def _colors(roles: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {r: cmap(i % 10) for i, r in enumerate(_roles(roles))}


# ------------------------------------------------------------------ inputs

def _scalar_metrics(metrics: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    roles = _roles(metrics)
    names: list[str] = []
    for role in roles:
        names += [k for k, v in metrics[role].items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in names]
    return roles, names


# ------------------------------------------------------------------ figures

def _ylim(values: list[float]) -> tuple[float, float] | None:
    """Limits that fit ``values`` with a 5% margin: given the values after each curve's first
    tenth of epochs, they show the curves' course rather than their first epochs' steep drop."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return None
    low, high = min(finite), max(finite)
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
    return low - pad, high + pad


def draw_learning_curves(history: dict[str, list[dict[str, float]]]) -> Callable:
    def draw(plt):
        if not history:
            raise Skip("no history.csv and no histories in checkpoints/")
        colors = _colors(list(history))
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
        late: dict[int, list[float]] = {0: [], 1: []}
        for role in _roles(history):
            rows = history[role]
            epochs = [r["epoch"] + 1 for r in rows]  # epochs counted from 1, as in the progress lines
            skip = len(rows) // 10  # long runs: the first tenth's steep drop would flatten the rest
            for i, key in enumerate(("train_loss", "val_loss")):
                ys = [r.get(key, np.nan) for r in rows]
                axes[i].plot(epochs, ys, color=colors[role], label=role.replace("_", " "))
                late[i] += ys[skip:] if len(ys) > skip else ys
        axes[0].set(title="training objective (each role's own)", xlabel="epoch",
                    ylabel="loss (task, + distillation for the student)")
        axes[1].set(title="validation loss (comparable across roles)", xlabel="epoch",
                    ylabel="masked Poisson NLL")
        for i, ax in enumerate(axes):
            lim = _ylim(late[i])
            if lim:
                ax.set_ylim(*lim)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
        axes[1].legend(frameon=False)
        if any(len(rows) >= 10 for rows in history.values()):
            fig.text(0.5, -0.02, "y-axes are set by the epochs after each curve's first tenth (its steep drop "
                     "may run off the top)", ha="center", fontsize=8, color="0.35")
        fig.tight_layout()
        return fig
    return draw


def _is_reference(row: str) -> bool:
    from blend_core.explain import MODEL_ROWS

    return row not in MODEL_ROWS


#: how reference rows are drawn: lines across the models' bars, one style each
_REF_STYLE = ({"color": "0.3", "ls": "--", "lw": 1.3}, {"color": "k", "ls": ":", "lw": 1.6},
              {"color": "0.5", "ls": "-.", "lw": 1.3})


def draw_metrics(means: dict[str, dict[str, float]], sds: dict[str, dict[str, float]] | None, n: int) -> Callable:
    """Models as bars (± s.d. over seeds); reference rows (smoothing, oracle) as dashed lines across:
    they are yardsticks, not models. The teacher's behavior metrics are hatched (it sees behavior)."""
    def draw(plt):
        rows, names = _scalar_metrics(means)
        if not names:
            raise Skip("no scalar metrics")
        roles = [r for r in rows if not _is_reference(r)]
        refs = [r for r in rows if _is_reference(r)]
        colors = _colors(roles)
        fig, axes = plt.subplots(1, len(names), figsize=(2.9 * len(names) + 1, 3.4), squeeze=False)
        hatched = False
        for ax, name in zip(axes[0], names):
            shown = [r for r in roles if name in means[r]]
            vals = [means[r][name] for r in shown]
            err = [sds[r][name] for r in shown] if sds else None
            bars = ax.bar(range(len(shown)), vals, yerr=err, capsize=4, color=[colors[r] for r in shown])
            for bar, role in zip(bars, shown):
                if name in TEACHER_SEES and role in ("teacher", "control_teacher"):
                    bar.set(hatch="///", alpha=0.45, edgecolor="k")
                    hatched = True
            ax.set_xticks(range(len(shown)), [r.replace("_", " ") for r in shown], rotation=30, ha="right")
            for ref in refs:
                if name in means[ref]:
                    ax.axhline(means[ref][name], label=ref, **_REF_STYLE[refs.index(ref) % len(_REF_STYLE)])
            ax.set_title(name)
            ax.axhline(0, color="k", lw=0.5)
        what = f"models: mean ± s.d. over {n} seeds" if sds else "models: one run"
        note = "; hatched: the teacher sees behavior (not comparable)" if hatched else ""
        fig.suptitle(f"{what}; lines: reference rows{note}", fontsize=10)
        if refs:
            handles = [plt.Line2D([], [], **_REF_STYLE[i % len(_REF_STYLE)]) for i in range(len(refs))]
            fig.legend(handles, [f"{r} (reference)" for r in refs], loc="center left", bbox_to_anchor=(1.0, 0.5),
                       frameon=False, fontsize=8)
        fig.tight_layout()
        return fig
    return draw


def _npz(run_dir: Path) -> dict[str, np.ndarray]:
    path = run_dir / "report-data.npz"
    if not path.exists():
        raise Skip(f"{path.name} missing (runs from before blend wrote it, or a task without it)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # truncated, not a zip, an entry that is not an array or needs pickle
        raise BlendError(f"{path}: not a readable report-data.npz (corrupt, truncated or not blend's)") from None


def read_json(path: Path, what: type = dict) -> Any:
    """A JSON file of the directory, or one line naming it if it is not readable JSON of that kind."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BlendError(f"{path}: not readable JSON ({' '.join(str(exc).split())[:100]})") from None
    if not isinstance(value, what):
        raise BlendError(f"{path}: expected a JSON {what.__name__}, got {type(value).__name__}")
    return value


def draw_behavior(run_dir: Path) -> Callable:
    def draw(plt):
        z = _npz(run_dir)
        if "behavior_true" not in z:
            raise Skip("the data has no behavior to decode")
        true, names = z["behavior_true"], [str(s) for s in z["behavior_names"]]
        roles = [r for r in _roles(z["roles"]) if f"behavior_pred/{r}" in z]
        colors = _colors(roles)
        n_trials, n_dims = true.shape[0], true.shape[2]
        t, xlabel = _time_axis(z, true.shape[1])
        fig, axes = plt.subplots(n_dims, n_trials, figsize=(2.6 * n_trials, 2 * n_dims), squeeze=False, sharey="row")
        for j in range(n_trials):
            for d in range(n_dims):
                ax = axes[d, j]
                ax.plot(t, true[j, :, d], color="k", lw=2, label="true")
                for role in roles:
                    ax.plot(t, z[f"behavior_pred/{role}"][j, :, d], color=colors[role], lw=1,
                            label=role.replace("_", " "))
                if d == 0:
                    ax.set_title(f"test trial {int(z['behavior_trials'][j])}", fontsize=9)
                if j == 0:
                    ax.set_ylabel(names[d] if d < len(names) else f"dim {d}")
        axes[0, -1].legend(frameon=False, fontsize=7)
        fig.supxlabel(xlabel)
        fig.tight_layout()
        return fig
    return draw


def _time_axis(z: dict[str, np.ndarray], bins: int) -> tuple[np.ndarray, str]:
    """Bin centres in ms when the run recorded its bin width, else bin indices."""
    if "bin_ms" in z and np.isfinite(float(z["bin_ms"])) and float(z["bin_ms"]) > 0:
        return (np.arange(bins) + 0.5) * float(z["bin_ms"]), "time in trial (ms)"
    return np.arange(bins), "time bin"


def draw_psth(run_dir: Path, roles: tuple[str, ...] = ("student", "baseline")) -> Callable:
    """True (thick) and predicted (dashed) condition PSTHs: one row per role, so that what the
    student gained over the baseline is seen side by side; colours are conditions."""
    def draw(plt):
        z = _npz(run_dir)
        shown = [r for r in roles if f"psth_pred/{r}" in z]
        if "psth_true" not in z or not shown:
            raise Skip("the data has no condition PSTHs")
        true = z["psth_true"]
        n_cond, bins, n_neurons = true.shape
        conds = list(range(min(n_cond, 6)))
        t, xlabel = _time_axis(z, bins)
        n_in = int(z["n_heldin"]) if "n_heldin" in z else None
        import matplotlib

        cmap = matplotlib.colormaps["viridis"]
        fig, axes = plt.subplots(len(shown), n_neurons, figsize=(3 * n_neurons, 2.5 * len(shown) + 0.6),
                                 squeeze=False, sharex=True, sharey="col")
        for i, role in enumerate(shown):
            pred = z[f"psth_pred/{role}"]
            for k in range(n_neurons):
                ax = axes[i, k]
                for c in conds:
                    col = cmap(c / max(1, len(conds) - 1))
                    ax.plot(t, true[c, :, k], color=col, lw=2.2, alpha=0.45)
                    ax.plot(t, pred[c, :, k], color=col, lw=1.1, ls="--")
                neuron = int(z["psth_neurons"][k])
                held = " (held-out)" if n_in is not None and neuron >= n_in else ""
                ax.set_title(f"{role}: neuron {neuron}{held}", fontsize=9)
                if i == len(shown) - 1:
                    ax.set_xlabel(xlabel)
            axes[i, 0].set_ylabel("rate (spikes/s)")
        handles = [matplotlib.lines.Line2D([], [], color=cmap(c / max(1, len(conds) - 1)), lw=2) for c in conds]
        handles += [matplotlib.lines.Line2D([], [], color="0.3", lw=2.2, alpha=0.45),
                    matplotlib.lines.Line2D([], [], color="0.3", lw=1.1, ls="--")]
        fig.legend(handles, [f"condition {c}" for c in conds] + ["true", "predicted"], loc="center left",
                   bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
        fig.suptitle(f"condition-averaged rates on test trials ({len(conds)} of {n_cond} conditions): "
                     "true (thick) vs predicted (dashed)", fontsize=10)
        fig.tight_layout()
        return fig
    return draw


def draw_latents(run_dir: Path) -> Callable:
    def draw(plt):
        z = _npz(run_dir)
        if "latents_pca" not in z:
            raise Skip("no student latents")
        lat = z["latents_pca"]
        cond = z["conditions"] if "conditions" in z else np.zeros(len(lat), dtype=int)
        import matplotlib

        cmap = matplotlib.colormaps["tab10"]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        for c in np.unique(cond):
            trials = lat[cond == c]
            mean = trials.mean(0)
            for t in trials[:8]:
                ax.plot(t[:, 0], t[:, 1], color=cmap(int(c) % 10), lw=0.4, alpha=0.4)
            ax.plot(mean[:, 0], mean[:, 1], color=cmap(int(c) % 10), lw=2, label=f"condition {int(c)}")
            ax.plot(mean[0, 0], mean[0, 1], "o", color=cmap(int(c) % 10), ms=4)
        ax.set(xlabel="PC 1", ylabel="PC 2", title="student latents on test trials (PCA)")
        if len(np.unique(cond)) <= 10:
            ax.legend(frameon=False, fontsize=7)
        return fig
    return draw


def draw_confusion(metrics: dict[str, dict[str, Any]], role: str = "student") -> Callable:
    def draw(plt):
        keys = [k for k in metrics.get(role, {}) if k.startswith("confusion (")]
        if not keys:
            raise Skip("no confusion matrix in metrics.json")
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
        for ax, key in zip(axes[0], keys):
            label = key[len("confusion ("):-1]
            m = np.asarray(metrics[role][key], dtype=float)
            classes = metrics[role].get(f"classes ({label})", list(range(len(m))))
            norm = m / np.maximum(m.sum(1, keepdims=True), 1)
            ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            for i in range(len(m)):
                for j in range(len(m)):
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(len(classes)), classes, fontsize=7)
            ax.set(xlabel="predicted", ylabel="true", title=f"{role}: {label}")
        fig.tight_layout()
        return fig
    return draw


def draw_umap(run_dir: Path) -> Callable:
    def draw(plt):
        import importlib.util

        files = sorted((run_dir / "h5ad").glob("*.blend.h5ad"))
        if not files:
            raise Skip("no h5ad/*.blend.h5ad outputs")
        if importlib.util.find_spec("scanpy") is None:
            raise Skip("scanpy is not installed (pip install scanpy)")
        import anndata as ad
        import scanpy as sc

        adata = ad.concat([ad.read_h5ad(f) for f in files], label="session", index_unique="-")
        labels = [c[len("blend_"):] for c in adata.obs.columns
                  if c.startswith("blend_") and c[len("blend_"):] in adata.obs.columns]
        sc.pp.neighbors(adata, use_rep="X_blend", n_neighbors=min(15, adata.n_obs - 1))
        sc.tl.umap(adata, random_state=0)
        colour_by = labels or ["session"]
        fig, axes = plt.subplots(1, len(colour_by), figsize=(4.5 * len(colour_by), 4), squeeze=False)
        for ax, key in zip(axes[0], colour_by):
            values = adata.obs[key].astype(str).to_numpy()
            xy = adata.obsm["X_umap"]
            for i, v in enumerate(sorted(set(values))):
                sel = values == v
                ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=v, color=plt.get_cmap("tab10")(i % 10))
            ax.set(title=f"student embedding (UMAP), true {key}", xticks=[], yticks=[])
            ax.legend(frameon=False, fontsize=7, markerscale=2)
        fig.tight_layout()
        return fig
    return draw


def draw_sweep_key(rows: list[dict[str, Any]], key: str, metric: str) -> Callable:
    def draw(plt):
        done = [r for r in rows if r.get("status") == "finished" and isinstance(r.get(metric), float)]
        if not done:
            raise Skip(f"no finished trial with {metric}")
        xs = [r[key] for r in done]
        numeric = all(isinstance(x, float) for x in xs)
        cats = sorted({str(x) for x in xs}) if not numeric else None
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        pos = xs if numeric else [cats.index(str(x)) for x in xs]
        ax.scatter(pos, [r[metric] for r in done], color="C1")
        if cats:
            ax.set_xticks(range(len(cats)), cats)
        elif key.endswith("lr") or key.endswith("weight_decay"):
            ax.set_xscale("log")
        ys = [r[metric] for r in done]
        low, high = min(ys), max(ys)
        span = max(high - low, 0.1 * max(abs(low), abs(high)), 1e-3)  # a tiny spread is shown as tiny
        mid = (low + high) / 2
        ax.set_ylim(mid - 0.6 * span, mid + 0.6 * span)
        ax.grid(alpha=0.3)
        ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key}")
        ax.text(0.02, 0.02, f"spread over trials: {high - low:.4g}", transform=ax.transAxes, fontsize=8, color="0.3")
        return fig
    return draw


# ------------------------------------------------------------------ pages

def report_run(page: Page, run_dir: Path, prefix: str = "") -> None:
    """The figures of one run directory."""
    from blend_core.selection import scored_rows, val_rows

    path = run_dir / "metrics.json"
    saved = read_json(path)
    metrics, val = scored_rows(saved), val_rows(saved)
    if not all(isinstance(v, dict) for v in metrics.values()):
        raise BlendError(f"{path}: not blend's metrics (expected an object of role -> metrics)")
    roles, names = _scalar_metrics(metrics)
    page.table(f"{prefix}metrics", ["", *names],
               [[f"{r} (reference)" if _is_reference(r) else r, *(metrics[r].get(n, "") for n in names)]
                for r in roles],
               caption="scored split; reference rows are yardsticks, not models (smoothing: NLB's spike smoothing "
                       "+ GLM; oracle: the true rates). The teacher is given behavior as input: its vel R2 is not "
                       "comparable with the others'")
    if val:
        roles, names = _scalar_metrics(val)
        page.table(f"{prefix}validation", ["", *names],
                   [[f"{r} (reference)" if _is_reference(r) else r, *(val[r].get(n, "") for n in names)]
                    for r in roles],
                   caption="the same rows on the validation split carved from training: the only scores "
                           "a sweep or --auto selects on")
    page.figure(f"{prefix}learning_curves", f"{prefix}learning curves", draw_learning_curves(read_history(run_dir)))
    page.figure(f"{prefix}metrics", f"{prefix}metrics per role", draw_metrics(metrics, None, 1))
    if any(k.startswith("confusion (") for k in metrics.get("student", {})):
        page.figure(f"{prefix}confusion", f"{prefix}confusion matrix", draw_confusion(metrics))
        page.figure(f"{prefix}umap", f"{prefix}embedding UMAP", draw_umap(run_dir))
        return
    page.figure(f"{prefix}behavior", f"{prefix}decoded vs true behavior", draw_behavior(run_dir),
                "ridge decoder from each role's rates, fit on train/val trials, shown on test trials")
    page.figure(f"{prefix}psth", f"{prefix}PSTHs", draw_psth(run_dir))
    page.figure(f"{prefix}latents", f"{prefix}latent trajectories", draw_latents(run_dir))


def report_seeds(page: Page, run_dir: Path) -> None:
    summary = read_json(run_dir / "summary.json")
    roles = [r for r in summary if " - " not in r and isinstance(summary[r], dict) and summary[r]
             and all(isinstance(v, dict) and "mean" in v and "sd" in v for v in summary[r].values())]
    diffs = [d for d in summary if " - " in d and isinstance(summary[d], dict)]
    if diffs:
        names = [n for n in summary[diffs[0]]]
        page.table("paired differences over seeds", ["", *names],
                   [[d, *(_ci(summary[d].get(n, {})) for n in names)] for d in diffs],
                   caption="mean [t-based 95% CI] of the per-seed difference")
    means = {r: {n: v["mean"] for n, v in summary[r].items()} for r in roles}
    sds = {r: {n: v["sd"] for n, v in summary[r].items()} for r in roles}
    n = max((len(v.get("values", [])) for r in roles for v in summary[r].values()), default=0)
    page.figure("metrics_seeds", "metrics per role over seeds", draw_metrics(means, sds, n))
    seeds = sorted(p for p in run_dir.glob("seed-*") if (p / "metrics.json").exists())
    if seeds:
        report_run(page, seeds[0], prefix=f"{seeds[0].name}: ")


def report_sweep(page: Page, sweep_dir: Path) -> None:
    from blend_core.sweep import load_rows, selection_column

    rows = load_rows(sweep_dir)
    section = (yaml.safe_load((sweep_dir / "sweep.yaml").read_text()) or {}).get("sweep", {})
    metric = section.get("metric", "student/co-bps")
    keys = list(section.get("params", {}))
    chosen = selection_column(metric)  # what picked best.yaml: the validation split's score
    page.table("trials", ["trial", "status", *keys, chosen, metric],
               [[r.get("trial"), r.get("status"), *(r.get(k, "") for k in keys), r.get(chosen, ""), r.get(metric, "")]
                for r in rows],
               caption=f"{chosen} (the validation split carved from training) picks the best trial; {metric} is "
                       f"the scored split's. Every column of every trial is in {sweep_dir / 'results.csv'}")
    for i, key in enumerate(keys):
        page.figure(f"sweep_{i}", f"{metric} against {key}", draw_sweep_key(rows, key, metric))
    done = [r for r in rows if r.get("status") == "finished" and isinstance(r.get(chosen), float)]
    if done:
        mode = section.get("mode", "max")
        best = (max if mode == "max" else min)(done, key=lambda r: r[chosen])
        report_run(page, sweep_dir / str(best["dir"]), prefix=f"best trial ({best['trial']}): ")


def report_auto(page: Page, run_dir: Path) -> None:
    """A ``blend run --auto`` directory: the search (a small table), then the final run's figures."""
    from blend_core.sweep import load_rows

    summary = read_json(run_dir / "auto" / "auto.json")
    rows = load_rows(run_dir / "auto")
    keys = list(summary["chosen"]["params"])
    column = summary["metric"]
    page.table("search", ["trial", "status", column, *keys],
               [[r.get("trial"), r.get("status"), r.get(column, ""), *(r.get(k, "") for k in keys)] for r in rows],
               caption=f"{summary['finished']} of {summary['trials']} trials finished in "
                       f"{summary['search_seconds'] / 60:.1f} min (budget {summary['budget_minutes']:g} min); "
                       f"ranked on {column}, the validation split carved from training; "
                       f"chosen: {summary['chosen']['trial']}")
    bar = summary.get("bar")
    if bar is not None:
        verdict = "beats" if summary["beaten"] else "does NOT beat"
        page.note("the bar", f"the chosen trial ({summary['chosen']['score']:.4f}) {verdict} the best reference row, "
                             f"{bar['row']} ({bar['score']:.4f}), on the validation split")
    final = run_dir / "final"
    if (final / "summary.json").exists():
        report_seeds(page, final)
    elif (final / "metrics.json").exists():
        report_run(page, final, prefix="final: ")
    else:
        page.note("final run", f"{final}: no finished final run")


def write_report(run_dir: Path, *, out_dir: Path | None = None) -> Path:
    """Write ``OUT/index.html`` and its PNGs (``OUT`` defaults to ``RUN_DIR/report``); return the page."""
    run_dir = Path(run_dir)
    _plt()
    if not run_dir.is_dir():
        raise BlendError(f"{run_dir}: no such run directory")
    if (run_dir / "auto" / "auto.json").exists():
        report = report_auto
    elif (run_dir / "results.csv").exists() and (run_dir / "sweep.yaml").exists():
        report = report_sweep
    elif (run_dir / "summary.json").exists():
        report = report_seeds
    elif (run_dir / "metrics.json").exists():
        report = report_run
    else:  # refused before anything is created in it
        raise BlendError(f"{run_dir}: not a finished run, --seeds run or sweep "
                         "(no metrics.json, summary.json or results.csv)")
    if out_dir is None:
        out_dir = run_dir / "report"
        refuse_link(out_dir)  # a planted link would send the figures elsewhere
    page = Page(Path(out_dir), f"blend report: {run_dir.resolve().name}")
    report(page, run_dir)  # figures are written (the folder made) as they are drawn
    body = page.sections
    page.sections = []
    describe_run(page, run_dir)
    page.sections += body
    return page.write()


def _first_run(run_dir: Path) -> Path:
    """The directory that holds the config: the run, a --seeds run's first seed, or a sweep's itself."""
    if (run_dir / "config.yaml").exists():
        return run_dir
    seeds = sorted(run_dir.glob("seed-*/config.yaml"))
    return seeds[0].parent if seeds else run_dir


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None


def describe_run(page: Page, run_dir: Path) -> None:
    """What the numbers need beside them: the warnings of ``blend_core.explain``, when and with what the
    run was made (run.json, provenance.json), the epochs each role ran, and the resolved config."""
    import time

    from blend_core.explain import run_warnings

    if (run_dir / "auto" / "auto.json").exists() and (run_dir / "final").is_dir():
        run_dir = run_dir / "final"  # --auto: the final run's warnings and facts
    warnings = run_warnings(run_dir) if not (run_dir / "results.csv").exists() else []
    if warnings:
        page.html("warnings", "".join(f"<p class='warn'>{html.escape(w)}</p>" for w in warnings))
    first = _first_run(run_dir)
    marker = _read(first / "run.json") or {}
    prov = _read(first / "provenance.json") or {}
    config = _read(first / "config.yaml") or {}
    train = config.get("train") or {}
    facts = [("run directory", str(run_dir.resolve())), ("run created", marker.get("created", "?")),
             ("report written", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))]
    if isinstance(prov, dict) and prov:
        facts += [("blend / torch / python", f"{prov.get('blend', '?')} / {prov.get('torch', '?')} / "
                                             f"{prov.get('python', '?')}"),
                  ("git commit", str(prov.get("git_commit", "?"))),
                  ("command", " ".join(map(str, prov.get("command", []))) if isinstance(prov.get("command"), list)
                   else str(prov.get("command", "?")))]
    if config:
        sections = [f"{k} {config[k].get('type')}" for k in ("data", "backbone", "teacher", "privileged")
                    if isinstance(config.get(k), dict) and config[k].get("type")]
        facts.append(("components", ", ".join(sections)))
    history = read_history(first) if (first / "checkpoints").exists() or (first / "history.csv").exists() else {}
    for role in _roles(history):
        rows = [r for r in history[role] if "epoch" in r]
        if not rows:
            continue
        ran = int(max(r["epoch"] for r in rows)) + 1
        best = min(rows, key=lambda r: r.get("val_loss", np.inf))
        cap = train.get("max_epochs", "?")
        stop = "early-stopped" if isinstance(cap, int) and ran < cap else "ran every epoch"
        facts.append((f"{role} epochs", f"{ran} of {cap} ({stop}); best validation epoch {int(best['epoch']) + 1}"))
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts)
    where = "" if first == run_dir else f" (from {first.name})"
    cfg = (f"<details><summary>resolved config{html.escape(where)}</summary><pre>"
           f"{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre></details>") if config else ""
    page.html("run", f"<dl>{dl}</dl>{cfg}")
