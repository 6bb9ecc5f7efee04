"""Contracts checked where they are used: broken backbones fail in one line, exit 2, before training
and before the run directory exists; losses a task refuses are refused by ``blend validate``."""

from __future__ import annotations

import pytest
import yaml

from blend_core.api import installed_plugin
from blend_core.cli import main

BROKEN = '''
import attrs, torch
from blend_core.api import ModelOutput, hookimpl


@attrs.frozen(kw_only=True)
class Config:
    width: int = 8


class Base(torch.nn.Module):
    """A linear backbone; each subclass breaks one clause of the contract."""

    def __init__(self, config, dims, n_in=None, n_out=None):
        super().__init__()
        self.dims = dims
        self.inp = torch.nn.Linear(n_in or dims.input_dim, config.width)
        self.out = torch.nn.Linear(config.width, n_out or dims.output_dim)
        self.feature_dims = (config.width,)

    def forward(self, x, context=None):
        h = self.inp(x)
        return ModelOutput(log_rates=self.out(h), features=(h,))


class WrongNeurons(Base):  # built for one neuron too many: the first layer cannot take the data
    def __init__(self, config, dims):
        super().__init__(config, dims, n_in=dims.input_dim + 1)


class NoForwardBins(Base):  # drops the forward-prediction bins
    def forward(self, x, context=None):
        out = super().forward(x)
        return ModelOutput(log_rates=out.log_rates[:, :-2], features=(out.features[0][:, :-2],))


class Broadcastable(Base):  # one bin that would broadcast against the targets
    def forward(self, x, context=None):
        out = super().forward(x)
        return ModelOutput(log_rates=out.log_rates[:, :1], features=out.features)


class Narrow(Base):  # features narrower than feature_dims promises
    def forward(self, x, context=None):
        out = super().forward(x)
        return ModelOutput(log_rates=out.log_rates, features=(out.features[0][..., :-1],))


class NaNs(Base):
    def forward(self, x, context=None):
        out = super().forward(x)
        return ModelOutput(log_rates=out.log_rates * float("nan"), features=out.features)


@hookimpl
def blend_add_backbones(register):
    for name, cls in [("wrong_neurons", WrongNeurons), ("no_forward_bins", NoForwardBins),
                      ("broadcastable", Broadcastable), ("narrow", Narrow), ("nans", NaNs), ("fine", Base)]:
        register(name, Config, cls, "a test backbone")
'''

# synthetic tiny data (conftest.TINY): 12 held-in + 4 held-out neurons, 12 + 4 bins; dry-run batch of 8
CASES = {
    "wrong_neurons": "the student's forward failed on a batch of the task (x (8, 16, 12)): RuntimeError: ",
    "no_forward_bins": "log_rates has shape (8, 14, 16), expected (8, 16, 16)",
    "broadcastable": "log_rates has shape (8, 1, 16), expected (8, 16, 16)",
    "narrow": "features[0] has shape (8, 16, 7), expected (8, ..., 8) from feature_dims",
    "nans": "log_rates contain NaN or inf",
}


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    (tmp_path / "tests_broken_backbones.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    installed_plugin(monkeypatch, "tests_broken_backbones", "tests_broken_backbones")
    return "tests_broken_backbones"


def _write(tmp_path, raw):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_backbone_is_one_line_exit_2_and_no_run_dir(name, broken_plugin, tmp_path, tiny_raw, capsys):
    tiny_raw["plugins"] = [broken_plugin]
    tiny_raw["backbone"] = {"type": name}
    tiny_raw["teacher"] = {"type": "ndt", "num_layers": 1, "d_model": 16, "ffn_dim": 16, "num_heads": 2}
    out = tmp_path / "run"
    code = main(["run", str(_write(tmp_path, tiny_raw)), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    # the section, the component, the plugin that registered it (no distribution here: a bare module)
    assert err.startswith(f"error: backbone '{name}' (tests_broken_backbones): "), err
    assert CASES[name] in err
    assert not out.exists()


def test_validate_runs_the_same_dry_run(broken_plugin, tmp_path, tiny_raw, capsys):
    tiny_raw["plugins"] = [broken_plugin]
    tiny_raw["backbone"] = {"type": "broadcastable"}
    assert main(["validate", str(_write(tmp_path, tiny_raw))]) == 2
    assert capsys.readouterr().err.endswith(CASES["broadcastable"] + "\n")
    tiny_raw["backbone"] = {"type": "fine"}
    assert main(["validate", str(_write(tmp_path, tiny_raw))]) == 0
    assert "models checked on a batch of the data" in capsys.readouterr().out


def test_broken_teacher_is_named_as_the_teacher_section(broken_plugin, tmp_path, tiny_raw, capsys):
    tiny_raw["plugins"] = [broken_plugin]
    tiny_raw["teacher"] = {"type": "nans"}
    assert main(["validate", str(_write(tmp_path, tiny_raw))]) == 2
    assert capsys.readouterr().err.startswith("error: teacher 'nans' (tests_broken_backbones): log_rates contain")


def test_builtin_components_are_named_with_their_distribution(tmp_path, tiny_raw, capsys, monkeypatch):
    """A broken built-in names blend-core and its version (the contract error format)."""
    import blend_core.backbones.ndt as ndt

    real = ndt.NDT.forward

    def nan_forward(self, x, context=None, **extra):
        out = real(self, x, context, **extra)
        out.log_rates = out.log_rates * float("nan")
        return out

    monkeypatch.setattr(ndt.NDT, "forward", nan_forward)
    from blend_core import __version__

    # without a teacher section the teacher uses `backbone`: that is the section named
    assert main(["validate", str(_write(tmp_path, tiny_raw))]) == 2
    assert capsys.readouterr().err.startswith(f"error: backbone 'ndt' (blend-core {__version__}): log_rates contain")


@pytest.mark.parametrize("loss, reason", [("soft", "identically zero"), ("correlation", "reduces to 'hard'")])
def test_identity_task_refuses_losses_that_mean_nothing(loss, reason, tmp_path, capsys):
    pytest.importorskip("blend_spatial")
    raw = {
        "data": {"type": "spatial_synthetic", "n_subjects": 2, "sessions_per_subject": 1,
                 "neurons_per_session": 20, "n_frames": 200, "n_genes": 8},
        "task": {"window": 8, "windows_per_neuron": 2, "val_windows_per_neuron": 1},
        "backbone": {"type": "neuprint", "embedding_dim": 4, "hidden_dim": 8},
        "privileged": {"type": "linear", "out_dim": 2, "fusion": "add"},
        "distillation": {"losses": [{"type": "hard"}, {"type": loss}]},
        "train": {"device": "cpu"},
    }
    path = _write(tmp_path, raw)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"distillation.losses.1.type: {loss!r} is refused by this task: " in err
    assert reason in err and err.count("\n") == 1
    raw["distillation"] = {"losses": [{"type": "hard"}]}
    assert main(["validate", str(_write(tmp_path, raw))]) == 0, capsys.readouterr().err
