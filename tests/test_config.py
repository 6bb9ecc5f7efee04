"""Config validation: every problem reported at once, each with its path, in pinned words."""

from __future__ import annotations

import pytest

from blend_core.config import apply_overrides, build_config, resolved_dict
from blend_core.errors import BlendError, ConfigError


def problems(raw, registry) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(raw, registry)
    return info.value.problems


def test_valid_config_resolves_defaults(tiny_raw, builtin_plugins):
    config = build_config(tiny_raw, builtin_plugins.registry)
    assert config.backbone.options.num_layers == 2
    assert config.train.lr == 1e-3
    resolved = resolved_dict(config)
    assert resolved["backbone"]["type"] == "ndt"
    assert resolved["distillation"]["losses"][0] == {"type": "correlation", "weight": 1.0, "corr_weight": 1.0}
    # the resolved dict is itself a valid config that resolves to the same thing
    assert resolved_dict(build_config(resolved, builtin_plugins.registry)) == resolved


def test_unknown_key_suggests_the_close_one(tiny_raw, builtin_plugins):
    tiny_raw["train"]["max_epoch"] = 3
    assert problems(tiny_raw, builtin_plugins.registry) == [
        "train.max_epoch: unknown key; did you mean 'max_epochs'?"
    ]


def test_unknown_key_without_close_match_lists_keys(tiny_raw, builtin_plugins):
    tiny_raw["privileged"]["zzz"] = 1
    assert problems(tiny_raw, builtin_plugins.registry) == [
        "privileged.zzz: unknown key; expected one of: dropout, hidden_dim, num_layers, out_dim"
    ]


def test_wrong_type(tiny_raw, builtin_plugins):
    tiny_raw["backbone"]["num_layers"] = "four"
    assert problems(tiny_raw, builtin_plugins.registry) == [
        "backbone.num_layers: expected int, got 'four'"
    ]


def test_bool_is_not_an_int_and_literals_are_checked(tiny_raw, builtin_plugins):
    tiny_raw["train"]["seed"] = True
    tiny_raw["train"]["device"] = "tpu"
    assert problems(tiny_raw, builtin_plugins.registry) == [
        "train.seed: expected int, got True",
        "train.device: expected one of 'auto', 'cpu', 'cuda'",
    ]


def test_unknown_component_lists_available(tiny_raw, builtin_plugins):
    tiny_raw["backbone"] = {"type": "transformerz"}
    assert problems(tiny_raw, builtin_plugins.registry) == [
        "backbone.type: unknown backbone 'transformerz'; available: lfads, ndt, stndt"
    ]


def test_all_problems_at_once(tiny_raw, builtin_plugins):
    tiny_raw["backbone"]["num_layers"] = "four"
    tiny_raw["train"]["max_epoch"] = 3
    tiny_raw["distillation"] = {"losses": [{"type": "hard"}, {"type": "nope", "weight": 2}]}
    tiny_raw["extra_section"] = {}
    assert problems(tiny_raw, builtin_plugins.registry) == [
        "extra_section: unknown key; expected one of: auto, backbone, controls, data, distillation, output, plugins, privileged, sweep, task, teacher, train",
        "backbone.num_layers: expected int, got 'four'",
        "distillation.losses.1.type: unknown distillation loss 'nope'; available: correlation, feature, hard, poisson_kl, soft",
        "train.max_epoch: unknown key; did you mean 'max_epochs'?",
    ]


def test_error_message_names_the_file(tiny_raw, builtin_plugins):
    tiny_raw["train"]["lr"] = "fast"
    with pytest.raises(ConfigError) as info:
        build_config(tiny_raw, builtin_plugins.registry, source="cfg.yaml")
    assert str(info.value) == "cfg.yaml: train.lr: expected float, got 'fast'"


def test_combined_distillation_losses(tiny_raw, builtin_plugins):
    tiny_raw["distillation"] = {"alpha": 0.3, "losses": [{"type": "hard", "weight": 0.5},
                                                          {"type": "soft", "temperature": 3.0}]}
    config = build_config(tiny_raw, builtin_plugins.registry)
    assert config.distillation.alpha == 0.3
    assert [(w.loss.type, w.weight) for w in config.distillation.losses] == [("hard", 0.5), ("soft", 1.0)]
    assert config.distillation.losses[1].loss.options.temperature == 3.0


def test_overrides_parse_yaml_scalars(tiny_raw):
    raw = apply_overrides(tiny_raw, ["train.max_epochs=5", "backbone.dropout=0.1", "output.dir=x/y"])
    assert raw["train"]["max_epochs"] == 5 and raw["backbone"]["dropout"] == 0.1
    assert raw["output"]["dir"] == "x/y"


@pytest.mark.parametrize("item, message", [
    ("train.max_epochs", "--set 'train.max_epochs': expected KEY=VALUE, e.g. train.max_epochs=5"),
    ("=5", "--set '=5': expected KEY=VALUE, e.g. train.max_epochs=5"),
    ("train..x=1", "--set 'train..x=1': expected KEY=VALUE, e.g. train.max_epochs=5"),
    ("train.max_epochs.x=1", "--set 'train.max_epochs.x=1': train.max_epochs is not a section"),
])
def test_bad_override(tiny_raw, item, message):
    with pytest.raises(BlendError) as info:
        apply_overrides(tiny_raw, [item])
    assert str(info.value) == message


def test_one_dotted_key_setter_behind_set_and_sweep_params():
    """``--set KEY=VALUE`` and a sweep's ``params`` set keys the same way (lists indexed, sections
    created, null drops the key), and refuse a key below a value with the same words."""
    import copy

    from blend_core.config import apply_overrides
    from blend_core.errors import BlendError
    from blend_core.sweep import set_key

    raw = {"distillation": {"losses": [{"type": "hard"}]}, "train": {"lr": 1.0}}
    for key, value, text in [("distillation.losses.0.weight", 0.5, "0.5"), ("train.lr", None, "null"),
                             ("output.dir", "x", "x"), ("train.max_epochs", 3, "3")]:
        assert set_key(raw, key, value) == apply_overrides(copy.deepcopy(raw), [f"{key}={text}"])
    assert raw == {"distillation": {"losses": [{"type": "hard"}]}, "train": {"lr": 1.0}}  # a copy
    with pytest.raises(BlendError, match=r"^sweep.params.train.lr.x: train.lr is not a section$"):
        set_key(raw, "train.lr.x", 1)
    with pytest.raises(BlendError, match=r"^--set 'train.lr.x=1': train.lr is not a section$"):
        apply_overrides(copy.deepcopy(raw), ["train.lr.x=1"])
