"""The built-in ``neural`` task: masked modeling of binned spikes (NDT-style, method.md §3)."""

from __future__ import annotations

import functools
from typing import Any, Iterator, Literal

import attrs
import numpy as np
import torch
import torch.nn.functional as F

import blend_core.metrics as metrics  # noqa: E402
import blend_core.validators as v
from blend_core.data import NeuralData
from blend_core.model import BlendModel, Inputs, ModelDims, ModelOutput


@attrs.frozen(kw_only=True)
class MaskedModelingConfig:
    #: fraction of window bins of the held-in input that are masked
    mask_ratio: float = attrs.field(default=0.25, validator=v.in_range(0.0, 1.0, low_open=True, high_open=True))
    mask_mode: Literal["zero", "bert"] = "zero"  #: 'bert' splits masked bins into zero/random/keep
    mask_span: int = attrs.field(default=1, validator=v.POSITIVE_INT)  #: masked bins come in runs of this length
    bert_random: float = attrs.field(default=0.1, validator=v.in_range(0.0, 1.0))
    bert_keep: float = attrs.field(default=0.1, validator=v.in_range(0.0, 1.0))
    eval_batch_size: int = attrs.field(default=256, validator=v.POSITIVE_INT)

    def __attrs_post_init__(self) -> None:
        if self.bert_random + self.bert_keep > 1:
            raise v.FieldError("bert_keep", f"bert_random + bert_keep must be <= 1, got {self.bert_random + self.bert_keep:g}")


class NeuralTask:
    """Holds a NeuralData's arrays on the training device and batches them by index."""

    def __init__(self, config: MaskedModelingConfig, data: NeuralData, device: torch.device) -> None:
        self.config, self.data, self.device = config, data, device
        n_in = data.n_heldin
        spikes = np.concatenate([data.heldin, data.heldout], axis=2)
        self.targets = torch.as_tensor(spikes, dtype=torch.float32, device=device)
        self.observed = ~torch.isnan(self.targets)
        self.targets = torch.nan_to_num(self.targets)
        window = data.window_bins
        heldin = self.targets[:, :, :n_in].clone()
        heldin[:, window:] = 0.0  # forward bins enter as zeros
        self.heldin = heldin
        self.behavior = (
            torch.as_tensor(np.nan_to_num(data.behavior), dtype=torch.float32, device=device)
            if data.behavior is not None else None
        )
        self.split_index = {
            s: torch.as_tensor(data.indices(s), device=device) for s in ("train", "val", "test")
        }
        self.window = window
        self.n_in = n_in
        self.behavior_dim = data.behavior_dim
        self.dims = ModelDims(
            input_dim=n_in, output_dim=n_in + data.n_heldout, seq_len=data.n_bins,
        )
        self.mean_counts = heldin[self.split_index["train"], :window].mean(dim=(0, 1))

    # ------------------------------------------------------------ training

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        idx = self.split_index[split]
        if generator is not None:
            idx = idx[torch.randperm(len(idx), generator=generator, device=generator.device).to(idx.device)]
        return iter(idx.split(batch_size))

    def _bin_mask(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, window) bool: which window bins are masked, in runs of ``mask_span``."""
        span = max(1, self.config.mask_span)
        p = self.config.mask_ratio / span
        starts = torch.rand(n, self.window, generator=generator, device=generator.device) < p
        if span == 1:
            return starts.to(self.device)
        # a run starting at bin t covers t .. t+span-1: bin t is masked if a run started in
        # t-span+1 .. t (left padding; max_pool1d's own padding may not exceed half the kernel)
        runs = F.max_pool1d(F.pad(starts.float()[:, None], (span - 1, 0)), span, stride=1)[:, 0]
        return (runs > 0).to(self.device)

    def inputs(self, batch: torch.Tensor, generator: torch.Generator | None) -> Inputs:
        x = self.heldin[batch]
        behavior = self.behavior[batch] if self.behavior is not None else None
        n, bins = x.shape[:2]
        loss_mask = self.observed[batch]  # indexing copies
        if generator is None:  # in order and unmasked (mask_ratio is in (0, 1): its validator)
            return Inputs(x=x, behavior=behavior, meta={"loss_mask": loss_mask})
        masked = self._bin_mask(n, generator)
        visible = torch.zeros(n, bins, dtype=torch.bool, device=self.device)  # forward bins are never visible
        visible[:, : self.window] = ~masked
        loss_mask[:, :, : self.n_in] &= ~visible[:, :, None]  # held-in: masked window bins + forward bins
        # arithmetic, not boolean indexing: no host synchronisation inside a training step
        window = x[:, : self.window]
        if self.config.mask_mode == "zero":
            window = window * (~masked)[:, :, None]
        else:
            u = torch.rand(n, self.window, generator=generator, device=generator.device).to(self.device)
            zero = masked & (u >= self.config.bert_random + self.config.bert_keep)
            rand = masked & (u < self.config.bert_random)
            noise = torch.poisson(self.mean_counts.expand(n, self.window, -1).contiguous(), generator=generator)
            window = torch.where(rand[:, :, None], noise, window * (~zero)[:, :, None])
        x[:, : self.window] = window
        return Inputs(x=x, behavior=behavior, meta={"loss_mask": loss_mask})

    def loss(self, output: ModelOutput, batch: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        """Poisson NLL (log-rate) on masked held-in bins, all held-out entries and forward bins."""
        mask = inputs.meta["loss_mask"].float()
        nll = F.poisson_nll_loss(output.log_rates.float(), self.targets[batch], log_input=True, reduction="none")
        return (nll * mask).sum() / mask.sum().clamp_min(1.0)

    # ------------------------------------------------------------ inference

    @torch.no_grad()
    def _run(self, model: BlendModel) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = model.training
        model.eval()
        rates, latents = [], []
        all_idx = torch.arange(self.data.n_trials, device=self.device)
        for idx in all_idx.split(self.config.eval_batch_size):
            out = model(self.inputs(idx, None))
            rates.append(out.log_rates.float().exp())
            latents.append(out.features[-1].float() if out.features else out.log_rates.float())
        model.train(was_training)
        return torch.cat(rates), torch.cat(latents)

    def predict(self, model: BlendModel) -> dict[str, Any]:
        """Rates and latents of every trial, with each trial's index in the data and its split
        (``train``/``val``/``test``), so that ``predictions.npz`` says which rows are which."""
        rates, latents = self._run(model)
        return {"rates": rates.cpu().numpy(), "latents": latents.cpu().numpy(),
                "trial": np.arange(self.data.n_trials), "split": np.asarray(self.data.split).astype(str)}

    def evaluate(self, model: BlendModel, predictions: dict[str, Any] | None = None) -> dict[str, Any]:
        rates = (predictions or self.predict(model))["rates"]
        return score_rates(self.data, rates)

    def references(self) -> dict[str, dict[str, float]]:
        """``smoothing`` (NLB's spike-smoothing + Poisson GLM baseline) and ``oracle`` (true rates,
        when known), scored like the models: rows that say whether a model is any good."""
        return {row: dict(values) for row, values in _reference_rows(self.data)["test"].items()}

    # ------------------------------------------------------------ validation (blend_core.selection)

    def evaluate_val(self, model: BlendModel, predictions: dict[str, Any] | None = None) -> dict[str, float]:
        """The NLB metrics on the ``val`` trials (the decoder of vel R2 fit on ``train`` trials only)."""
        rates = (predictions or self.predict(model))["rates"]
        return score_rates(self.data, rates, "val")

    def val_references(self) -> dict[str, dict[str, float]]:
        """The reference rows on the ``val`` trials. Smoothing's kernel and penalty are chosen on
        these trials, so its row is, if anything, optimistic: a strict bar."""
        return {row: dict(values) for row, values in _reference_rows(self.data)["val"].items()}

    @torch.no_grad()
    def val_score(self, model: BlendModel) -> float:
        """co-bps of the held-out neurons on the ``val`` trials: what ``train.monitor: score`` watches."""
        was_training = model.training
        model.eval()
        idx = self.split_index["val"]
        rates = torch.cat([model(self.inputs(b, None)).log_rates.float().exp()
                           for b in idx.split(self.config.eval_batch_size)])
        model.train(was_training)
        T, n_in = self.window, self.n_in
        target = self.data.heldout[self.data.indices("val"), :T]
        return metrics.bits_per_spike(rates[:, :T, n_in:].cpu().numpy(), target)


@functools.lru_cache(maxsize=1)
def _reference_rows(data: NeuralData) -> dict[str, dict[str, dict[str, float]]]:
    """Per split (``test``, ``val``), the reference rows. Cached per data object (identity):
    ``--seeds K`` shares one loaded dataset, so the GLMs fit once."""
    from blend_core.references import smoothing_rates

    smooth = smoothing_rates(data)[0]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("test", "val"):
        rows[split] = {"smoothing": score_rates(data, smooth, split)}
        if data.true_rates is not None:
            rows[split]["oracle"] = score_rates(data, data.true_rates, split)
    return rows


def score_rates(data: NeuralData, rates: np.ndarray, split: str = "test") -> dict[str, float]:
    """NLB metrics of predicted rates (all trials, all bins, held-in then held-out neurons) on ``split``'s trials.

    On ``test``, the vel R2 decoder is fit on the train and val trials (as NLB fits it); on ``val``, on
    the train trials only, so that validation scores never touch the scored trials.
    """
    scored = data.split == split
    fit = data.split != "test" if split == "test" else data.split == "train"
    T, n_in = data.window_bins, data.n_heldin
    spikes = np.concatenate([data.heldin, data.heldout], axis=2)
    out: dict[str, float] = {}
    if _observed(spikes[scored, :T, n_in:]):  # metrics whose targets are all unobserved (NLB test phase) are skipped
        out["co-bps"] = metrics.bits_per_spike(rates[scored, :T, n_in:], spikes[scored, :T, n_in:])
    if data.decode_behavior is not None and _observed(data.decode_behavior[scored]):
        masks = {}
        if data.decode_groups is not None:  # one decoder per group (NLB Area2: active / passive)
            groups = np.unique(data.decode_groups[scored & (data.decode_groups >= 0)])
            both = data.decode_groups[:, None] == groups[None, :]
            masks = {"train_decode_mask": both[fit], "eval_decode_mask": both[scored]}
        out["vel R2"] = metrics.velocity_r2(
            rates[fit, :T], data.decode_behavior[fit], rates[scored, :T], data.decode_behavior[scored], **masks
        )
    if (data.psth is not None and data.conditions is not None
            and np.isin(data.conditions[scored], np.arange(len(data.psth))).any()):
        cond = data.conditions[scored]
        cond_idx = [np.flatnonzero(cond == c) for c in range(data.psth.shape[0])]
        out["psth R2"] = metrics.psth_r2(rates[scored, :T], cond_idx, data.psth)
    if data.fp_bins and _observed(spikes[scored, T:]):
        out["fp-bps"] = metrics.bits_per_spike(rates[scored, T:], spikes[scored, T:])
    return out


def _observed(target: np.ndarray) -> bool:
    """Whether any target entry is observed (not NaN): a metric of no observed targets is skipped."""
    return bool(target.size) and not np.isnan(target).all()


def build_neural_task(config: MaskedModelingConfig, data: NeuralData, device: torch.device) -> NeuralTask:
    return NeuralTask(config, data, device)
