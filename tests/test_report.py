"""``blend report``: every figure of a finished run (and of a --seeds run) is a real PNG; the page links only files."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from blend_core.cli import main

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN_FIGURES = {"learning_curves", "metrics", "behavior", "psth", "latents"}


def check_page(page: Path, expected: set[str]) -> None:
    """Each expected figure exists, is a readable PNG of real content, and the page links only existing files."""
    import matplotlib.image as mpimg

    text = page.read_text()
    refs = re.findall(r"(?:src|href)='([^']+)'", text)
    assert refs and all((page.parent / r).is_file() for r in refs), refs
    assert {Path(r).stem for r in refs} >= expected
    for name in expected:
        png = page.parent / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert png.stat().st_size > 10_000, (name, png.stat().st_size)
        img = mpimg.imread(png)
        assert img.shape[0] > 100 and img.shape[1] > 100 and np.ptp(img) > 0  # not a blank canvas


def _run(tmp_path: Path, raw: dict, *extra: str) -> Path:
    import yaml

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), *extra]) == 0
    return out


def test_report_of_a_run_draws_every_figure(tmp_path, tiny_raw, capsys):
    out = _run(tmp_path, tiny_raw)
    capsys.readouterr()
    with np.load(out / "report-data.npz") as z:  # written by the built-in report_data hook
        assert z["behavior_true"].shape == z["behavior_pred/student"].shape
        assert z["psth_true"].shape == z["psth_pred/student"].shape
        assert z["latents_pca"].shape[0] == len(z["test_trials"]) == len(z["conditions"])
    assert main(["report", str(out)]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page == out / "report" / "index.html"
    check_page(page, RUN_FIGURES)
    assert "not drawn" not in page.read_text()


def test_report_of_seeds_has_error_bars_and_a_seed_run(tmp_path, tiny_raw, capsys):
    out = _run(tmp_path, tiny_raw, "--seeds", "2")
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    page = tmp_path / "rep" / "index.html"
    check_page(page, {"metrics_seeds", *(f"seed-0_{n}" for n in RUN_FIGURES)})
    assert "paired differences over seeds" in page.read_text() and "student - baseline" in page.read_text()


def test_a_missing_input_is_a_note_not_a_failure(tmp_path, tiny_raw, capsys):
    out = _run(tmp_path, tiny_raw)
    (out / "report-data.npz").unlink()
    assert main(["report", str(out)]) == 0
    text = (out / "report" / "index.html").read_text()
    assert text.count("not drawn: report-data.npz missing") == 3
    check_page(out / "report" / "index.html", {"learning_curves", "metrics"})


def test_report_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such run directory\n"
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a finished run" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err == (
        "error: blend report needs matplotlib: pip install 'blend-core[report]' (or: pip install 'matplotlib>=3.7')\n")


def test_identity_report_draws_the_confusion_matrix(tmp_path, capsys):
    """The neuron-identity task keeps its outputs in metrics.json (confusion) and h5ad/ (embeddings)."""
    from blend_core.report import draw_confusion

    metrics = {"student": {"accuracy (EC/IN)": 0.8, "confusion (EC/IN)": [[5, 1], [2, 7]],
                           "classes (EC/IN)": ["EC", "IN"]}}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw_confusion(metrics)(plt)
    assert fig.axes[0].get_title() == "student: EC/IN"
    assert [t.get_text() for t in fig.axes[0].texts] == ["5", "1", "2", "7"]
    plt.close(fig)


def test_report_of_an_identity_run_draws_confusion_and_umap(tmp_path, capsys, tiny_identity_raw):
    """blend-spatial keeps its outputs in metrics.json (confusion matrices) and h5ad/ (embeddings)."""
    raw = tiny_identity_raw
    out = _run(tmp_path, raw)
    assert not (out / "report-data.npz").exists()  # the identity task's outputs are its own
    assert main(["report", str(out)]) == 0
    page = out / "report" / "index.html"
    import importlib.util

    has_scanpy = importlib.util.find_spec("scanpy") is not None
    check_page(page, {"learning_curves", "metrics", "confusion", *(["umap"] if has_scanpy else [])})
    if not has_scanpy:
        assert "not drawn: scanpy is not installed" in page.read_text()
