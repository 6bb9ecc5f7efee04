"""The ``neuron_identity`` task: self-supervised neuron embeddings, scored by classifying identity.

Training (every neuron, every subject; labels are never used): a sample is a
pair ``(neuron, start frame)``; the model sees the neuron's activity over
``window`` frames and predicts each next frame (MSE), given population inputs
at the predicted frame. Windows are drawn from the first ``1 - val_fraction``
of each session's frames; validation windows (early stopping) from the rest.

Scoring: the trained model's embeddings (``features[0]``) are frozen; a
classifier fit on the labelled neurons of the ``train`` label split predicts
the ``test`` split (a held-out animal by default): top-1 accuracy, macro-F1,
confusion matrix and support for each label set (EC/IN, subclass).
"""

from __future__ import annotations

from typing import Any, Iterator, Literal

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from blend_core.api import (
    POSITIVE_INT,
    BlendModel,
    DataError,
    Inputs,
    ModelDims,
    ModelOutput,
    in_range,
    positive_finite,
)
from blend_spatial.classify import choose_classifier, classification_scores, fit_predict
from blend_spatial.data import NeuronIdentityData
from blend_spatial.features import activity_features, neighbours

POPULATION_INPUTS = ("population mean", "population std", "neighbour mean", "neighbour std")


@attrs.frozen(kw_only=True)
class NeuronIdentityConfig:
    window: int = attrs.field(default=16, validator=POSITIVE_INT)  #: frames of a neuron's own past the model sees (8 and 32 scored alike; 16 halves 32's cost)
    #: training windows per neuron per epoch; None: enough to cover a neuron's training frames once
    #: (so that an epoch is one pass over the data, whatever the recording length)
    windows_per_neuron: int | None = attrs.field(default=None, validator=attrs.validators.optional(POSITIVE_INT))
    val_fraction: float = attrs.field(default=0.2, validator=in_range(0.0, 1.0, low_open=True, high_open=True))  #: last share of each session's frames, for validation windows
    val_windows_per_neuron: int = attrs.field(default=4, validator=POSITIVE_INT)
    radius_um: float = attrs.field(default=65.0, validator=positive_finite())  #: neighbours: other neurons of the session within this distance
    #: z-score activity with training-frame statistics: of each ``neuron``, or of its ``session`` (one
    #: mean and s.d. for all its neurons, so that neurons keep their relative amplitudes), or ``none``
    normalize: Literal["neuron", "session", "none"] = "neuron"
    #: on the frozen embeddings; ``svm`` (RBF) because a type can sit *between* others in embedding
    #: space (EC cells among the inhibitory types), which no linear boundary separates; ``auto``: per
    #: label set, svm or logistic, whichever scores better leaving one *training* animal out at a time
    #: (``classify.choose_classifier``; the held-out animal never enters the choice)
    classifier: Literal["auto", "logistic", "svm", "mlp", "knn"] = "auto"
    #: what the classifier reads: the frozen ``embedding``, or the embedding concatenated with the
    #: hand-made activity statistics of ``blend_spatial.features`` (``embedding+features``; activity
    #: and positions only, never behavior or labels), so that what a z-scoring model cannot see
    #: (a neuron's rate and amplitude) still reaches the classifier
    classifier_input: Literal["embedding", "embedding+features"] = "embedding+features"
    class_weight: Literal["balanced", "none"] = "balanced"  #: logistic and svm
    svm_c: float = attrs.field(default=1.0, validator=positive_finite())  #: svm only: the RBF SVM's regularisation C
    knn_neighbors: int = attrs.field(default=10, validator=POSITIVE_INT)
    mlp_hidden: int = attrs.field(default=64, validator=POSITIVE_INT)
    eval_batch_size: int = attrs.field(default=1024, validator=POSITIVE_INT)


class NeuronIdentityTask:
    """Holds all sessions on the device, padded to the longest; batches are ``(B, 2)`` (neuron, start)."""

    #: distillation losses that mean nothing here: the prediction has one channel (the neuron itself)
    refused_losses = {
        "soft": "the prediction has one channel, so the softmax over channels is constant and 'soft' is identically zero",
        "correlation": "the prediction has one channel, so there are no correlations and 'correlation' reduces to 'hard'",
    }

    def __init__(self, config: NeuronIdentityConfig, data: NeuronIdentityData, device: torch.device) -> None:
        if not isinstance(data, NeuronIdentityData):
            raise DataError(f"task 'neuron_identity' needs neuron-identity data, got {type(data).__name__}")
        self.config, self.data, self.device = config, data, device
        self._features: np.ndarray | None = None  #: activity statistics, computed on first use
        W = config.window
        sessions = data.sessions
        frames = np.array([s.n_frames for s in sessions])
        train_end = np.floor(frames * (1 - config.val_fraction)).astype(np.int64)
        for s, f, e in zip(sessions, frames, train_end):
            if e < W + 2 or f - e < W + 2:
                raise DataError(
                    f"{s.origin or s.name}: {f} frames are too few for task.window={W} with "
                    f"val_fraction={config.val_fraction}; each part needs more than {W + 1} frames"
                )
        n, f_max = data.n_neurons, int(frames.max())
        act = np.zeros((n, f_max), np.float32)
        nbr_sum, nbr_sq = np.zeros_like(act), np.zeros_like(act)
        nbr_n = np.zeros(n, np.float32)
        pop_sum, pop_sq = np.zeros((len(sessions), f_max), np.float32), np.zeros((len(sessions), f_max), np.float32)
        behavior = np.zeros((len(sessions), f_max, data.behavior_dim), np.float32)
        if data.behavior_dim:
            fit = np.concatenate([s.behavior[:e] for s, e in zip(sessions, train_end)])
            b_mean, b_std = fit.mean(0), fit.std(0).clip(1e-6)
        for k, (s, o) in enumerate(zip(sessions, data.offsets)):
            a = s.activity.astype(np.float64)
            if config.normalize != "none":
                ref = a[:, : train_end[k]]
                if config.normalize == "session":
                    a = (a - ref.mean()) / max(ref.std(), 1e-6)
                else:
                    a = (a - ref.mean(1, keepdims=True)) / ref.std(1, keepdims=True).clip(1e-6)
            a = a.astype(np.float32)
            act[o : o + s.n_neurons, : s.n_frames] = a
            pop_sum[k, : s.n_frames], pop_sq[k, : s.n_frames] = a.sum(0), (a**2).sum(0)
            adj = neighbours(s.positions, config.radius_um)
            nbr_n[o : o + s.n_neurons] = np.asarray(adj.sum(1)).ravel()
            nbr_sum[o : o + s.n_neurons, : s.n_frames] = adj @ a
            nbr_sq[o : o + s.n_neurons, : s.n_frames] = adj @ a**2
            if data.behavior_dim:
                behavior[k, : s.n_frames] = (s.behavior - b_mean) / b_std
        t = lambda arr, dtype=torch.float32: torch.as_tensor(arr, dtype=dtype, device=device)
        self.act, self.nbr_sum, self.nbr_sq, self.nbr_n = t(act), t(nbr_sum), t(nbr_sq), t(nbr_n)
        self.pop_sum, self.pop_sq = t(pop_sum), t(pop_sq)
        self.pop_n = t([s.n_neurons for s in sessions])
        self.behavior = t(behavior) if data.behavior_dim else None
        self.session_of = t(data.session_index, torch.long)
        # first and last valid start frame per neuron, for training and validation windows
        sess = data.session_index
        self.ranges = {
            "train": (t(np.zeros(n), torch.long), t(train_end[sess] - W - 1, torch.long)),
            "val": (t(train_end[sess], torch.long), t(frames[sess] - W - 1, torch.long)),
        }
        self.split_neurons = {
            "train": torch.arange(n, device=device),
            "val": torch.arange(n, device=device),
            "test": torch.as_tensor(np.flatnonzero(data.split == "test"), device=device),
        }
        self.offsets = torch.arange(W + 1, device=device)
        self.train_windows = config.windows_per_neuron or max(1, int(np.ceil(train_end.mean() / W)))
        self.behavior_dim = data.behavior_dim
        self.dims = ModelDims(
            input_dim=1, output_dim=1, seq_len=W,
            extra={"n_neurons": n, "population_dim": len(POPULATION_INPUTS), "activity_dim": 1},
        )

    # ------------------------------------------------------------ training

    def _windows(self, split: str, generator: torch.Generator | None) -> torch.Tensor:
        """(samples, 2) long: neuron, start frame."""
        neurons = self.split_neurons[split]
        lo, hi = self.ranges["train" if split == "train" else "val"]
        per = self.train_windows if split == "train" else self.config.val_windows_per_neuron
        neurons = neurons.repeat_interleave(per)
        lo, hi = lo[neurons], hi[neurons]
        if generator is None:  # evenly spaced, reproducible
            frac = ((torch.arange(len(neurons), device=self.device) % per) + 0.5) / per
        else:
            frac = torch.rand(len(neurons), generator=generator, device=generator.device).to(self.device)
        starts = lo + (frac * (hi - lo + 1).float()).long().clamp_max(hi - lo)
        return torch.stack([neurons, starts], dim=1)

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        samples = self._windows(split, generator)
        if generator is not None:
            samples = samples[torch.randperm(len(samples), generator=generator, device=generator.device).to(self.device)]
        return iter(samples.split(batch_size))

    def inputs(self, batch: torch.Tensor, generator: torch.Generator | None) -> Inputs:
        """Own past activity; population inputs and behavior at each predicted frame; the target in meta."""
        neuron = batch[:, 0]
        frames = batch[:, 1:2] + self.offsets  # (B, W + 1)
        sess = self.session_of[neuron][:, None]
        a = self.act[neuron[:, None], frames]
        x, target = a[:, :-1, None], a[:, 1:, None]
        nxt = frames[:, 1:]
        own = a[:, 1:]
        m = (self.pop_n[sess] - 1).clamp_min(1)  # leave-one-out: the neuron's own activity is excluded
        pop_mean = (self.pop_sum[sess, nxt] - own) / m
        pop_std = ((self.pop_sq[sess, nxt] - own**2) / m - pop_mean**2).clamp_min(0).add(1e-6).sqrt()
        k = self.nbr_n[neuron][:, None]
        nbr_mean = self.nbr_sum[neuron[:, None], nxt] / k.clamp_min(1)
        nbr_std = (self.nbr_sq[neuron[:, None], nxt] / k.clamp_min(1) - nbr_mean**2).clamp_min(0).add(1e-6).sqrt()
        nbr_std = nbr_std * (k > 0)
        population = torch.stack([pop_mean, pop_std, nbr_mean, nbr_std], dim=-1)
        behavior = self.behavior[sess, nxt] if self.behavior is not None else None
        return Inputs(x=x, behavior=behavior, extra={"neuron": neuron, "population": population},
                      meta={"target": target})

    def loss(self, output: ModelOutput, batch: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        """MSE of the predicted next-frame activity (``log_rates`` holds activity here, not a log)."""
        return F.mse_loss(output.log_rates.float(), inputs.meta["target"])

    # ------------------------------------------------------------ inference

    @torch.no_grad()
    def _run(self, model: BlendModel) -> tuple[np.ndarray, float]:
        """Per-neuron embeddings (mean of ``features[0]`` over its validation windows) and next-frame R² on val."""
        was_training = model.training
        model.eval()
        n = self.data.n_neurons
        emb, count = None, torch.zeros(n, device=self.device)
        sse = sst = torch.zeros((), device=self.device)
        targets_sum = torch.zeros((), device=self.device)
        total = 0
        for batch in self.batches("val", self.config.eval_batch_size, None):
            inputs = self.inputs(batch, None)
            out = model(inputs)
            if not out.features:
                raise DataError("task 'neuron_identity': the backbone returns no features; it needs a per-neuron "
                                "embedding as features[0] (use backbone 'neuprint')")
            e = out.features[0].float()
            e = e.mean(1) if e.ndim == 3 else e
            if emb is None:
                emb = torch.zeros(n, e.shape[-1], device=self.device)
            emb.index_add_(0, batch[:, 0], e)
            count.index_add_(0, batch[:, 0], torch.ones(len(batch), device=self.device))
            y = inputs.meta["target"]
            sse = sse + (out.log_rates.float() - y).pow(2).sum()
            sst = sst + y.pow(2).sum()
            targets_sum = targets_sum + y.sum()
            total += y.numel()
        model.train(was_training)
        var = sst - targets_sum**2 / max(total, 1)
        r2 = float(1 - sse / var.clamp_min(1e-12))
        return (emb / count.clamp_min(1)[:, None]).cpu().numpy(), r2

    def features(self) -> np.ndarray:
        """The activity statistics of every neuron (computed once; ``blend_spatial.features``)."""
        if self._features is None:
            self._features = activity_features(self.data, self.config.radius_um)
        return self._features

    def classifier_input(self, embedding: np.ndarray) -> np.ndarray:
        """What the classifier reads for these embeddings (``task.classifier_input``)."""
        if self.config.classifier_input == "embedding+features":
            return np.concatenate([embedding, self.features()], axis=1)
        return embedding

    def _classify(self, embedding: np.ndarray, classifier: str | None = None, *, raw: bool = False) -> dict[str, Any]:
        """Fit ``classifier`` (default: the task's) on the ``train`` labels; predict every neuron.

        ``embedding`` goes through ``classifier_input`` unless ``raw`` (the reference rows' statistics).
        """
        c = self.config
        out: dict[str, Any] = {}
        fit = self.data.split == "train"
        x = embedding if raw else self.classifier_input(embedding)
        options = dict(class_weight=c.class_weight, knn_neighbors=c.knn_neighbors, mlp_hidden=c.mlp_hidden,
                       svm_c=c.svm_c)
        for lab in self.data.labels:
            kind = self._kind(x, lab, fit & lab.labelled(), classifier or c.classifier)
            pred, proba = fit_predict(x, lab.values, fit & lab.labelled(), lab.classes, kind, **options)
            out[f"{lab.key}_pred"], out[f"{lab.key}_proba"] = pred, proba
            out[f"{lab.key}_classifier"] = np.asarray(kind)  # what classifier: auto chose
            out[f"{lab.key}_classes"] = np.asarray(lab.classes, dtype=str)
        return out

    def _kind(self, x: np.ndarray, lab: Any, fit: np.ndarray, kind: str) -> str:
        """The classifier to fit on rows ``fit``: ``kind``, or for ``auto`` the one that scores better
        leaving one of those rows' animals out at a time (their sessions, with one animal)."""
        if kind != "auto":
            return kind
        c = self.config
        groups = self.data.subjects if len(set(self.data.subjects[fit])) > 1 else self.data.session_index
        chosen, _ = choose_classifier(x, lab.values, fit, groups, lab.classes, class_weight=c.class_weight,
                                      knn_neighbors=c.knn_neighbors, mlp_hidden=c.mlp_hidden, svm_c=c.svm_c)
        return chosen

    def predict(self, model: BlendModel) -> dict[str, Any]:
        """Embeddings, and each label set's predicted class and probabilities, for every neuron."""
        embedding, _ = self._run(model)
        names = np.concatenate([s.neuron_names for s in self.data.sessions]).astype(str)
        sessions = np.repeat([s.name for s in self.data.sessions], [s.n_neurons for s in self.data.sessions])
        return {"embedding": embedding.astype(np.float32), "neuron": names, "session": sessions.astype(str),
                "split": self.data.split.astype(str), **self._classify(embedding)}

    def evaluate(self, model: BlendModel, predictions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Scores on the labelled neurons of the ``test`` split; next-frame R² on validation windows."""
        embedding, r2 = self._run(model)
        predicted = predictions if predictions is not None else self._classify(embedding)
        metrics, details = self._score(predicted)
        metrics["next-frame R2 (val)"] = r2
        return {**metrics, **details}

    def _score(self, predicted: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """Accuracy and macro-F1 per label set on the labelled ``test`` neurons; confusion, support, classes."""
        metrics: dict[str, float] = {}
        details: dict[str, Any] = {}
        test = self.data.split == "test"
        for lab in self.data.labels:
            mask = test & lab.labelled()
            scores = classification_scores(lab.values[mask], predicted[f"{lab.key}_pred"][mask], lab.classes)
            metrics[f"accuracy ({lab.name})"] = float(scores["accuracy"])
            metrics[f"macro F1 ({lab.name})"] = float(scores["macro F1"])
            details[f"confusion ({lab.name})"] = scores["confusion"]
            details[f"support ({lab.name})"] = scores["support"]
            details[f"classes ({lab.name})"] = list(lab.classes)
            if f"{lab.key}_classifier" in predicted:
                details[f"classifier ({lab.name})"] = str(predicted[f"{lab.key}_classifier"])
        return metrics, details

    # ------------------------------------------------------------ validation (blend_core.selection)

    def _val_folds(self) -> np.ndarray:
        """Per neuron, its validation fold (-1: not a validation neuron).

        Validation neurons are the labelled neurons of the ``train`` label split; each training
        animal is one fold (leave-one-training-animal-out), so the held-out animal is never used.
        With one training animal, each of its sessions is a fold; with one session, 5 interleaved
        folds of its neurons.
        """
        train = self.data.split == "train"
        folds = np.full(self.data.n_neurons, -1)
        subjects = self.data.subjects
        sessions = self.data.session_index
        for groups in (subjects, sessions, np.arange(self.data.n_neurons) % 5):
            names = np.unique(groups[train])
            if len(names) >= 2:
                folds[train] = np.searchsorted(names, groups[train])
                return folds
        return folds

    def _classify_val(self, embedding: np.ndarray, classifier: str | None = None, *,
                      raw: bool = False) -> dict[str, np.ndarray]:
        """Each label set's prediction for every validation neuron, by a classifier fit on the other folds
        (on what ``_classify`` reads: ``classifier_input`` of the embedding, unless ``raw``)."""
        c = self.config
        folds = self._val_folds()
        embedding = embedding if raw else self.classifier_input(embedding)
        out: dict[str, np.ndarray] = {}
        for lab in self.data.labels:
            pred = np.full(self.data.n_neurons, "", dtype=object)
            for k in np.unique(folds[folds >= 0]):
                fit = (folds >= 0) & (folds != k) & lab.labelled()
                if len(set(lab.values[fit].tolist())) < 2:
                    continue  # nothing to learn from one class: the fold stays unpredicted (scored wrong)
                kind = self._kind(embedding, lab, fit, classifier or c.classifier)  # auto: chosen inside the fold
                pred_k, _ = fit_predict(
                    embedding, lab.values, fit, lab.classes, kind, class_weight=c.class_weight,
                    knn_neighbors=c.knn_neighbors, mlp_hidden=c.mlp_hidden, svm_c=c.svm_c,
                )
                pred[folds == k] = pred_k[folds == k]
            out[f"{lab.key}_pred"] = pred.astype(str)
        return out

    def _score_val(self, predicted: dict[str, np.ndarray]) -> dict[str, float]:
        """Accuracy and macro-F1 per label set over the labelled validation neurons."""
        folds = self._val_folds()
        out: dict[str, float] = {}
        for lab in self.data.labels:
            mask = (folds >= 0) & lab.labelled()
            scores = classification_scores(lab.values[mask], predicted[f"{lab.key}_pred"][mask], lab.classes)
            out[f"accuracy ({lab.name})"] = float(scores["accuracy"])
            out[f"macro F1 ({lab.name})"] = float(scores["macro F1"])
        return out

    def evaluate_val(self, model: BlendModel, predictions: dict[str, Any] | None = None) -> dict[str, float]:
        """Leave-one-training-animal-out accuracy and macro-F1 of the frozen embeddings."""
        embedding = predictions["embedding"] if predictions and "embedding" in predictions else self._run(model)[0]
        return self._score_val(self._classify_val(embedding))

    def val_references(self) -> dict[str, dict[str, float]]:
        """The rows of ``references()``, scored leave-one-training-animal-out."""
        return {name: self._score_val(self._classify_val(self._reference_features(behavior), classifier, raw=True))
                for name, behavior, classifier in self._reference_variants()}

    def val_score(self, model: BlendModel) -> float:
        """Mean over label sets of the leave-one-training-animal-out accuracy (``train.monitor: score``)."""
        scores = self._score_val(self._classify_val(self._run(model)[0]))
        return float(np.mean([v for k, v in scores.items() if k.startswith("accuracy")]))

    def _reference_features(self, behavior: bool) -> np.ndarray:
        return activity_features(self.data, self.config.radius_um, behavior=True) if behavior else self.features()

    def _reference_variants(self) -> list[tuple[str, bool, str | None]]:
        variants = [("features", False, None)] + ([("features+behavior", True, None)] if self.behavior_dim else [])
        if self.config.classifier != "logistic":
            variants.append(("features (logistic)", False, "logistic"))
        return variants

    def references(self) -> dict[str, dict[str, Any]]:
        """Reference rows: the task's classifier on hand-made activity statistics (``blend_spatial.features``).

        ``features`` uses activity (and positions) only; ``features+behavior`` adds each neuron's
        correlation with each behavior variable, when the data has behavior. Same split, classifier
        and scores as the models' rows; no next-frame R² (there is no dynamical model). When the task's
        classifier is not logistic, ``features (logistic)`` adds the statistics under a logistic
        regression: they are built to be read linearly, so that row is the stronger bar for them.
        """
        rows: dict[str, dict[str, Any]] = {}
        for name, behavior, classifier in self._reference_variants():
            feats = self._reference_features(behavior)
            metrics, details = self._score(self._classify(feats, classifier, raw=True))
            rows[name] = {**metrics, **details}
        return rows


def build_task(config: NeuronIdentityConfig, data: NeuronIdentityData, device: torch.device) -> NeuronIdentityTask:
    return NeuronIdentityTask(config, data, device)
