"""Classifiers on frozen neuron embeddings, and their scores. No torch here."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

Kind = Literal["logistic", "svm", "mlp", "knn"]


def make_classifier(kind: Kind, *, class_weight: str = "balanced", knn_neighbors: int = 10,
                    mlp_hidden: int = 64, svm_c: float = 1.0, seed: int = 0) -> Any:
    """A scikit-learn pipeline: standardise the embeddings, then classify."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weight = None if class_weight == "none" else class_weight
    if kind == "logistic":
        clf = LogisticRegression(max_iter=2000, class_weight=weight)
    elif kind == "svm":  # RBF kernel: a class may sit *between* others in embedding space (EC among the IN types)
        clf = _scored_svc()(kernel="rbf", C=svm_c, class_weight=weight, random_state=seed)
    elif kind == "mlp":  # scikit-learn's MLP has no class weights
        clf = MLPClassifier((mlp_hidden,), max_iter=1000, early_stopping=False, alpha=1e-3, random_state=seed)
    elif kind == "knn":
        clf = KNeighborsClassifier(n_neighbors=knn_neighbors, weights="distance")
    else:
        raise ValueError(f"task.classifier: unknown classifier {kind!r}; expected logistic, svm, mlp or knn")
    return make_pipeline(StandardScaler(), clf)


def _scored_svc() -> type:
    """An RBF SVC whose ``predict_proba`` is the softmax of its one-vs-rest decision values.

    Its argmax is the SVC's own decision; the values are scores that sum to 1, not calibrated
    probabilities (Platt scaling, ``SVC(probability=True)``, is deprecated and needs several
    neurons per class for its internal cross-validation).
    """
    from sklearn.svm import SVC

    class ScoredSVC(SVC):
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            d = np.asarray(self.decision_function(X), dtype=np.float64)
            d = np.stack([-d, d], axis=1) / 2 if d.ndim == 1 else d
            e = np.exp(d - d.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

    return ScoredSVC


def fit_predict(
    features: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, classes: Sequence[str], kind: Kind, **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit on ``features[fit_mask]``; predicted class and probabilities ``(N, len(classes))`` for every row."""
    clf = make_classifier(kind, **options)
    fit_x = features[fit_mask]
    if kind == "knn":
        clf.set_params(kneighborsclassifier__n_neighbors=min(options.get("knn_neighbors", 10), len(fit_x)))
    clf.fit(fit_x, labels[fit_mask])
    proba = np.zeros((len(features), len(classes)), dtype=np.float32)
    cols = [list(classes).index(c) for c in clf.classes_]
    proba[:, cols] = clf.predict_proba(features)
    return np.asarray(classes)[proba.argmax(1)].astype(str), proba


#: what ``classifier: auto`` chooses between
AUTO_CANDIDATES: tuple[Kind, ...] = ("svm", "logistic")


def leave_one_group_out(features: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, groups: np.ndarray,
                        classes: Sequence[str], kind: Kind, **options: Any) -> float:
    """Mean accuracy over the groups of ``fit_mask`` (e.g. the training animals), each scored by a
    classifier fit on the others. Only ``fit_mask`` rows are read: the held-out animal never enters.
    NaN when fewer than two groups can be scored (a group is skipped when the others lack a class)."""
    scores = []
    for g in np.unique(groups[fit_mask]):
        held, rest = fit_mask & (groups == g), fit_mask & (groups != g)
        if not held.any() or len(np.unique(labels[rest])) < 2:
            continue
        pred, _ = fit_predict(features, labels, rest, classes, kind, **options)
        scores.append(float(np.mean(pred[held] == labels[held])))
    return float(np.mean(scores)) if len(scores) >= 2 else float("nan")


def choose_classifier(features: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, groups: np.ndarray,
                      classes: Sequence[str], **options: Any) -> tuple[Kind, dict[str, float]]:
    """``classifier: auto``: the candidate with the best leave-one-group-out accuracy on the fit rows
    (ties and no usable groups: the first candidate, svm), and every candidate's score."""
    scores = {k: leave_one_group_out(features, labels, fit_mask, groups, classes, k, **options)
              for k in AUTO_CANDIDATES}
    usable = {k: v for k, v in scores.items() if not np.isnan(v)}
    best = max(usable, key=lambda k: (usable[k], -AUTO_CANDIDATES.index(k))) if usable else AUTO_CANDIDATES[0]
    return best, scores


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Top-1 accuracy, macro-F1 over ``labels``, confusion matrix (rows: true) and support, JSON-ready."""
    from blend_core.api import classification_scores as core_scores

    out = core_scores(y_true, y_pred, labels)
    return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}
