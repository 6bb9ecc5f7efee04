"""LFADS-style sequential variational autoencoder (Pandarinath et al. 2018; lfads-torch, Sedler 2023).

Generative model, for one trial of ``T`` bins::

    g_0 = W_g0 z,            z   ~ q(z | x) = N(mu_ic, sigma_ic^2)       (initial condition)
    c_t = GRU_con([e_t, f_{t-1}], c_{t-1});  u_t ~ N(mu_co(c_t), sigma_co(c_t)^2)   (controller)
    g_t = clip(GRU_gen(u_t, g_{t-1}))
    f_t = W_f Drop(g_t)     (factors; W_f has unit-norm rows)
    log r_t = W_r f_t + b_r

``mu_ic, sigma_ic`` come from the final states of a bidirectional GRU over the
input; ``e_t`` from a second bidirectional GRU, its forward half lagged by
``ci_lag`` bins and its backward half led by ``ci_lag``. Posteriors are sampled
with the reparameterisation trick in training and replaced by their means in
eval mode. Losses, against standard-normal priors::

    kl_ic  = kl_weight_ic * mean_trials sum_dims KL(N(mu_ic, sigma_ic^2) || N(0, 1))
    kl_co  = kl_weight_co * mean_trials sum_{t, dims} KL(N(mu_co, sigma_co^2) || N(0, 1))
    l2_gen = l2_weight_gen * 0.5 * mean(W_hh^2)      (generator recurrent weights)

``co_dim = 0`` removes the controller (then the generator is autonomous).
Features are (IC-encoder states, generator states, factors), each per bin.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import blend_core.validators as v
from blend_core.model import ModelDims, ModelOutput

_positive = attrs.validators.gt(0)
_non_negative = v.non_negative_finite()
_probability = v.PROBABILITY


@attrs.frozen(kw_only=True)
class LFADSConfig:
    """Sizes follow lfads-torch's NLB MC_Maze configs; the weights need tuning per dataset."""

    ic_enc_dim: int = attrs.field(default=64, validator=_positive)  #: IC encoder GRU width (per direction)
    ci_enc_dim: int = attrs.field(default=64, validator=_positive)  #: controller-input encoder width (per direction)
    ci_lag: int = attrs.field(default=1, validator=_non_negative)  #: bins the controller input lags the data
    con_dim: int = attrs.field(default=64, validator=_positive)  #: controller GRU width
    co_dim: int = attrs.field(default=4, validator=_non_negative)  #: inferred-input width; 0: no controller
    ic_dim: int = attrs.field(default=64, validator=_positive)  #: initial-condition latent width
    gen_dim: int = attrs.field(default=100, validator=_positive)  #: generator GRU width
    fac_dim: int = attrs.field(default=40, validator=_positive)  #: factor width
    dropout: float = attrs.field(default=0.3, validator=_probability)
    cell_clip: float = attrs.field(default=5.0, validator=_positive)  #: bound on generator/controller states
    ic_post_var_min: float = attrs.field(default=1e-4, validator=_non_negative)
    kl_weight_ic: float = attrs.field(default=1e-4, validator=_non_negative)
    kl_weight_co: float = attrs.field(default=1e-4, validator=_non_negative)
    l2_weight_gen: float = attrs.field(default=1e-4, validator=_non_negative)


def gaussian_kl(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(N(mean, var) || N(0, 1))``."""
    return 0.5 * (var + mean.square() - 1.0 - var.log())


class LFADS(nn.Module):
    def __init__(self, config: LFADSConfig, dims: ModelDims) -> None:
        super().__init__()
        c = config
        self.config = c
        self.context = nn.Linear(dims.context_dim, dims.input_dim) if dims.context_dim else None
        self.dropout = nn.Dropout(c.dropout)
        self.ic_encoder = nn.GRU(dims.input_dim, c.ic_enc_dim, batch_first=True, bidirectional=True)
        self.ic_posterior = nn.Linear(2 * c.ic_enc_dim, 2 * c.ic_dim)
        self.ic_to_g0 = nn.Linear(c.ic_dim, c.gen_dim)
        self.use_controller = c.co_dim > 0
        if self.use_controller:
            self.ci_encoder = nn.GRU(dims.input_dim, c.ci_enc_dim, batch_first=True, bidirectional=True)
            self.controller = nn.GRUCell(2 * c.ci_enc_dim + c.fac_dim, c.con_dim)
            self.con_init = nn.Parameter(torch.zeros(1, c.con_dim))
            self.co_posterior = nn.Linear(c.con_dim, 2 * c.co_dim)
        self.generator = nn.GRUCell(c.co_dim, c.gen_dim)
        self.factors = nn.Linear(c.gen_dim, c.fac_dim, bias=False)
        self.readout = nn.Linear(c.fac_dim, dims.output_dim)
        self.feature_dims = (2 * c.ic_enc_dim, c.gen_dim, c.fac_dim)

    def _sample(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mean
        return mean + var.sqrt() * torch.randn_like(mean)

    def _factor(self, g: torch.Tensor) -> torch.Tensor:
        return F.linear(self.dropout(g), F.normalize(self.factors.weight, dim=1))

    def _controller_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Per-bin controller inputs: forward states lagged and backward states led by ``ci_lag``."""
        states, _ = self.ci_encoder(x)
        fwd, bwd = states.chunk(2, dim=-1)
        lag = min(self.config.ci_lag, x.shape[1])
        if lag:
            fwd = F.pad(fwd, (0, 0, lag, 0))[:, : x.shape[1]]
            bwd = F.pad(bwd, (0, 0, 0, lag))[:, lag:]
        return self.dropout(torch.cat([fwd, bwd], dim=-1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> ModelOutput:
        c = self.config
        if self.context is not None and context is not None:
            x = x + self.context(context.to(x.dtype))
        x = self.dropout(x)

        enc_states, enc_final = self.ic_encoder(x)
        ic_params = self.ic_posterior(self.dropout(torch.cat([enc_final[0], enc_final[1]], dim=-1)))
        ic_mean, ic_logvar = ic_params.chunk(2, dim=-1)
        ic_var = ic_logvar.exp() + c.ic_post_var_min
        g = self.ic_to_g0(self._sample(ic_mean, ic_var))
        f = self._factor(g)

        batch, steps = x.shape[:2]
        u = x.new_zeros(batch, 0)
        if self.use_controller:
            ci = self._controller_inputs(x)
            con = self.con_init.expand(batch, -1)
            co_means, co_vars = [], []
        gen_states, factors = [], []
        for t in range(steps):
            if self.use_controller:
                con = self.controller(torch.cat([ci[:, t], f], dim=-1), con).clamp(-c.cell_clip, c.cell_clip)
                co_mean, co_logvar = self.co_posterior(con).chunk(2, dim=-1)
                co_var = co_logvar.exp()
                u = self._sample(co_mean, co_var)
                co_means.append(co_mean)
                co_vars.append(co_var)
            g = self.generator(u, g).clamp(-c.cell_clip, c.cell_clip)
            f = self._factor(g)
            gen_states.append(g)
            factors.append(f)
        gen = torch.stack(gen_states, dim=1)
        fac = torch.stack(factors, dim=1)

        losses = {"kl_ic": c.kl_weight_ic * gaussian_kl(ic_mean, ic_var).float().sum(-1).mean()}
        if self.use_controller:
            kl_co = gaussian_kl(torch.stack(co_means, 1), torch.stack(co_vars, 1)).float()
            losses["kl_co"] = c.kl_weight_co * kl_co.sum(dim=(1, 2)).mean()
        if c.l2_weight_gen:
            losses["l2_gen"] = c.l2_weight_gen * 0.5 * self.generator.weight_hh.float().square().mean()
        return ModelOutput(log_rates=self.readout(fac), features=(enc_states, gen, fac), losses=losses)


def build_lfads(config: LFADSConfig, dims: ModelDims) -> LFADS:
    return LFADS(config, dims)
