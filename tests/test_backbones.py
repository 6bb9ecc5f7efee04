"""Built-in backbones: the conformance kit, plus what is specific to STNDT and LFADS."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from blend_core.backbones.lfads import LFADSConfig, build_lfads, gaussian_kl
from blend_core.backbones.stndt import STNDTConfig, build_stndt
from blend_core.backbones.ndt import NDTConfig, build_ndt
from blend_core.model import ModelDims, ModelOutput
from blend_core.testing import BackboneCheckError, backbone_cases, check_backbone

TINY_STNDT = STNDTConfig(num_layers=2, num_heads=2, ffn_dim=16, dropout=0.1)
TINY_LFADS = LFADSConfig(ic_enc_dim=8, ci_enc_dim=6, con_dim=8, co_dim=2, ic_dim=4, gen_dim=12, fac_dim=5,
                         dropout=0.1)

CASES = [
    pytest.param(build_stndt, TINY_STNDT, id="stndt"),
    pytest.param(build_lfads, TINY_LFADS, id="lfads"),
    pytest.param(build_lfads, LFADSConfig(ic_enc_dim=8, ic_dim=4, gen_dim=12, fac_dim=5, co_dim=0),
                 id="lfads-no-controller"),
]
CASES.append(pytest.param(build_ndt, NDTConfig(num_layers=2, d_model=8, ffn_dim=16), id="ndt"))

DIMS = ModelDims(input_dim=6, output_dim=8, seq_len=12)


@pytest.mark.parametrize("factory, config", CASES)
@pytest.mark.parametrize("context_dim", [0, 3])
def test_conformance(factory, config, context_dim):
    check_backbone(factory, config, input_dim=6, output_dim=8, seq_len=12, context_dim=context_dim)


@pytest.mark.parametrize("factory, config", CASES)
def test_odd_sizes(factory, config):
    # neuron and bin counts not divisible by the head count (MC_Maze has 137 held-in neurons)
    check_backbone(factory, config, input_dim=7, output_dim=5, seq_len=9, context_dim=0, trials=2)


def test_every_registered_backbone_conforms(builtin_plugins):
    tiny = {"stndt": TINY_STNDT, "lfads": TINY_LFADS}
    cases = backbone_cases(builtin_plugins.registry, tiny)
    assert {"stndt", "lfads"} <= {name for name, _, _ in cases}
    for name, config, factory in cases:
        check_backbone(factory, config, context_dim=2)


# ---------------------------------------------------------------- the kit itself


class _Leaky(nn.Module):
    """Breaks batch independence (mixes trials) and leaves a parameter unused."""

    def __init__(self, dims: ModelDims) -> None:
        super().__init__()
        self.readout = nn.Linear(dims.input_dim, dims.output_dim)
        self.unused = nn.Linear(2, 2)
        self.feature_dims = (dims.output_dim,)

    def forward(self, x, context=None):
        out = self.readout(x - x.mean(dim=0, keepdim=True))
        return ModelOutput(log_rates=out, features=(out,))


def test_kit_names_parameters_without_gradient():
    with pytest.raises(BackboneCheckError, match=r"gradients reach parameters.*unused\.weight"):
        check_backbone(lambda c, d: _Leaky(d), None, context_dim=0)


def test_kit_catches_trial_mixing():
    with pytest.raises(BackboneCheckError, match="batch independence"):
        check_backbone(lambda c, d: _Leaky(d), None, context_dim=0, allow_no_grad=["unused.weight", "unused.bias"])


def test_kit_catches_ignored_context():
    def blind(config, dims):  # builds LFADS as if there were no context
        return build_lfads(config, ModelDims(input_dim=dims.input_dim, output_dim=dims.output_dim,
                                             seq_len=dims.seq_len))

    with pytest.raises(BackboneCheckError, match="context is used"):
        check_backbone(blind, TINY_LFADS, context_dim=2)


# ---------------------------------------------------------------- STNDT


def test_stndt_spatial_attention_mixes_neurons():
    """Output for neuron j depends on other neurons' inputs through the spatial block.

    With an identity embedding and readout, the temporal blocks' and FFNs'
    output projections zeroed and no final LayerNorm, a neuron's channel can
    only be reached from another neuron's input through the spatial attention.
    """
    torch.manual_seed(0)
    dims = ModelDims(input_dim=5, output_dim=5, seq_len=8)
    model = build_stndt(STNDTConfig(num_layers=1, num_heads=1, ffn_dim=8, dropout=0.0,
                                    dropout_embedding=0.0, dropout_rates=0.0), dims).eval()
    layer = model.layers[0]
    model.norm = nn.Identity()  # the final LayerNorm couples channels too
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(5))  # channel n of the stream is neuron n
        for lin in (layer.proj, layer.ffn[-1], layer.spatial_ffn[-1]):
            lin.weight.zero_()
            lin.bias.zero_()
        model.readout.weight.copy_(torch.eye(5))
    x = torch.poisson(torch.ones(2, 8, 5))
    x2 = x.clone()
    x2[..., 1:] = torch.poisson(torch.full((2, 8, 4), 3.0))  # change every neuron except neuron 0
    with torch.no_grad():
        base = model(x).log_rates[..., 0]
        moved = model(x2).log_rates[..., 0]
    assert not torch.allclose(base, moved), "neuron 0's output ignores the other neurons"

    # without the spatial mixing term, neuron 0 would be unaffected: the check above is not vacuous
    with torch.no_grad():
        layer.spatial_mix = lambda spatial, h: torch.zeros_like(h)  # type: ignore[method-assign]
        assert torch.allclose(model(x).log_rates[..., 0], model(x2).log_rates[..., 0])


def test_stndt_features_are_per_neuron():
    model = build_stndt(TINY_STNDT, DIMS)
    assert model.feature_dims == (DIMS.input_dim,) * TINY_STNDT.num_layers


def test_stndt_rejects_other_lengths():
    model = build_stndt(TINY_STNDT, DIMS)
    with pytest.raises(ValueError, match="12 bins"):
        model(torch.zeros(1, 10, DIMS.input_dim))


# ---------------------------------------------------------------- LFADS


def test_lfads_kl_terms_present_and_non_negative():
    model = build_lfads(TINY_LFADS, DIMS).train()
    out = model(torch.poisson(torch.ones(4, 12, 6)))
    assert set(out.losses) == {"kl_ic", "kl_co", "l2_gen"}
    for name, value in out.losses.items():
        assert value.dim() == 0 and value.item() >= 0.0, name
    # the KL terms are differentiable and reach the encoders
    sum(out.losses.values()).backward()
    assert model.ic_encoder.weight_hh_l0.grad.abs().sum() > 0
    assert model.ci_encoder.weight_hh_l0.grad.abs().sum() > 0


def test_lfads_losses_are_weighted_by_config():
    torch.manual_seed(0)
    model = build_lfads(TINY_LFADS, DIMS).eval()
    heavy = build_lfads(LFADSConfig(**{**_fields(TINY_LFADS), "kl_weight_ic": 1.0, "kl_weight_co": 1.0,
                                       "l2_weight_gen": 0.0}), DIMS).eval()
    heavy.load_state_dict(model.state_dict())
    x = torch.poisson(torch.ones(3, 12, 6))
    light_out, heavy_out = model(x), heavy(x)
    assert "l2_gen" not in heavy_out.losses
    for name in ("kl_ic", "kl_co"):
        assert torch.allclose(light_out.losses[name], heavy_out.losses[name] * 1e-4), name


def test_gaussian_kl_is_zero_at_the_prior():
    assert gaussian_kl(torch.zeros(3), torch.ones(3)).abs().max() < 1e-7
    assert (gaussian_kl(torch.randn(100), torch.rand(100) + 0.1) >= 0).all()


def test_lfads_samples_in_training_and_uses_means_in_eval():
    torch.manual_seed(0)
    config = LFADSConfig(**{**_fields(TINY_LFADS), "dropout": 0.0})  # only sampling is random
    model = build_lfads(config, DIMS)
    x = torch.poisson(torch.ones(2, 12, 6))
    model.train()
    assert not torch.allclose(model(x).log_rates, model(x).log_rates)
    model.eval()
    assert torch.equal(model(x).log_rates, model(x).log_rates)


def test_lfads_features_are_encoder_generator_factors():
    model = build_lfads(TINY_LFADS, DIMS).eval()
    out = model(torch.zeros(2, 12, 6))
    assert model.feature_dims == (16, 12, 5)
    assert [tuple(f.shape) for f in out.features] == [(2, 12, 16), (2, 12, 12), (2, 12, 5)]


def _fields(config) -> dict:
    import attrs

    return attrs.asdict(config)
