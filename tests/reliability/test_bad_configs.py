"""Every bad value is refused before anything is created: one line naming the key, exit 2,
no run directory left behind, and the config file unchanged (by hash)."""

from __future__ import annotations

import pytest

BAD_VALUES = [
    ("train.max_epochs=0", "train.max_epochs: must be >= 1, got 0"),
    ("train.max_epochs=-1", "train.max_epochs: must be >= 1, got -1"),
    ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("train.batch_size=-1", "train.batch_size: must be >= 1, got -1"),
    ("train.lr=.nan", "train.lr: must be a finite number > 0, got nan"),
    ("train.lr=-1", "train.lr: must be a finite number > 0, got -1.0"),
    ("train.lr=nan", "train.lr: expected float, got 'nan'"),
    ("train.weight_decay=.inf", "train.weight_decay: must be a finite number >= 0, got inf"),
    ("train.seed=9223372036854775808", "train.seed: must be in [0, 2**63), got 9223372036854775808"),
    ("train.seed=-1", "train.seed: must be in [0, 2**63), got -1"),
    ("train.eval_every=0", "train.eval_every: must be >= 1, got 0"),
    ("train.checkpoint_every=0", "train.checkpoint_every: must be >= 1, got 0"),
    ("train.threads=0", "train.threads: must be >= 1, got 0"),
    ("train.patience=-1", "train.patience: must be >= 0, got -1"),
    ("train.grad_clip=-1", "train.grad_clip: must be a finite number >= 0, got -1.0"),
    ("train.warmup_steps=-1", "train.warmup_steps: must be >= 0, got -1"),
    ("train.max_epochs=1e3", "train.max_epochs: expected int, got 1000.0"),
    ("backbone.d_model=0", "backbone.d_model: must be >= 1, got 0"),
    ("backbone.num_heads=3", "backbone.num_heads: must divide d_model (16), got 3"),
    ("backbone.dropout=1.5", "backbone.dropout: must be in [0.0, 1.0), got 1.5"),
    ("backbone.context_forward=-2", "backbone.context_forward: must be >= 0, got -2"),
    ("data.n_heldin=0", "data.n_heldin: must be >= 1, got 0"),
    ("data.n_heldout=0", "data.n_heldout: must be >= 1, got 0"),
    ("data.n_trials=3", "data.n_trials: too few trials for split_fractions [0.6, 0.15, 0.25]: no val trials (got 3 trials)"),
    ("data.n_trials=-5", "data.n_trials: must be >= 1, got -5"),
    ("data.n_conditions=0", "data.n_conditions: must be >= 1, got 0"),
    ("data.bin_ms=-5", "data.bin_ms: must be a finite number > 0, got -5.0"),
    ("data.split_fractions=[0.9, 0.2, 0.1]", "data.split_fractions: must sum to <= 1, got 1.2"),
    ("privileged.num_layers=0", "privileged.num_layers: must be >= 1, got 0"),
    ("privileged.out_dim=-3", "privileged.out_dim: must be >= 1, got -3"),
    ("distillation.alpha=2", "distillation.alpha: expected a float in [0, 1], got 2"),
    ("distillation.corr_weight=-1", "distillation.corr_weight: must be a finite number >= 0, got -1.0"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_value_is_one_line_before_anything_is_created(tmp_path, tiny_config_file, cli, digest, override, message):
    before = digest(tiny_config_file)
    out = tmp_path / "run"
    code, stdout, err = cli("run", tiny_config_file, "--out", out, "--set", override)
    assert (code, stdout) == (2, "")
    assert err == f"error: --set {override} (command line): {message}\n"  # the command line's, not the file's
    assert not out.exists()
    assert digest(tiny_config_file) == before


TASK_AND_LOSS = [
    (["task.type=neural", "task.mask_ratio=1"], "task.mask_ratio: must be in (0.0, 1.0), got 1.0"),
    (["task.type=neural", "task.mask_ratio=0"], "task.mask_ratio: must be in (0.0, 1.0), got 0.0"),
    (["task.type=neural", "task.mask_span=0"], "task.mask_span: must be >= 1, got 0"),
    (["task.type=neural", "task.mask_mode=bert", "task.bert_random=0.7", "task.bert_keep=0.6"],
     "task.bert_keep: bert_random + bert_keep must be <= 1, got 1.3"),
    (["distillation.type=soft", "distillation.temperature=0"],
     "distillation.temperature: must be a finite number > 0, got 0.0"),
    (["distillation.type=feature", "distillation.layers=[5]"],
     "distillation.layers: layer 5 out of range (2 student, 2 teacher feature layers)"),
]


@pytest.mark.parametrize("overrides, message", TASK_AND_LOSS, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(TASK_AND_LOSS)])
def test_task_and_loss_values(tmp_path, tiny_config_file, cli, overrides, message):
    out = tmp_path / "run"
    code, _, err = cli("run", tiny_config_file, "--out", out, *[a for o in overrides for a in ("--set", o)])
    given = [o for o in overrides if o.partition("=")[0] == message.split(":")[0]][-1]
    assert (code, err) == (2, f"error: --set {given} (command line): {message}\n")
    assert not out.exists()


def test_validate_reports_the_same_line(tiny_config_file, cli):
    code, _, err = cli("validate", tiny_config_file, "--set", "train.batch_size=0")
    assert (code, err) == (2, "error: --set train.batch_size=0 (command line): train.batch_size: must be >= 1, got 0\n")


def test_numbers_in_set_parse_as_numbers(tiny_config_file, cli):
    code, out, err = cli("validate", tiny_config_file, "--set", "train.lr=1e-3", "--set", "train.weight_decay=5E-5")
    assert (code, err) == (0, "") and "ok" in out
