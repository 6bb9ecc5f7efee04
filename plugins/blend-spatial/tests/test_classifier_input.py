"""``task.classifier_input``: the classifier reads the embedding, or the embedding with the activity statistics."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from blend_core.api import BlendModel
from blend_spatial.anndata_source import AnnDataConfig, AnnDataSource
from blend_spatial.features import activity_features
from blend_spatial.neuprint import NeuPRINTConfig, build_neuprint
from blend_spatial.task import NeuronIdentityConfig, NeuronIdentityTask

CPU = torch.device("cpu")
METRICS = ("accuracy (EC/IN)", "macro F1 (EC/IN)", "accuracy (subclass)", "macro F1 (subclass)")


@pytest.fixture(scope="module")
def data(tiny_dir):
    return AnnDataSource(AnnDataConfig(path=str(tiny_dir))).load()


def _model(task, constant: bool) -> BlendModel:
    torch.manual_seed(0)
    m = BlendModel(build_neuprint(NeuPRINTConfig(embedding_dim=4, hidden_dim=8), task.dims), None, "add")
    if constant:  # every neuron gets the same embedding: it carries no identity
        with torch.no_grad():
            m.backbone.embedding.weight[:] = m.backbone.embedding.weight[0]
    return m


def _task(data, **kw) -> NeuronIdentityTask:
    return NeuronIdentityTask(NeuronIdentityConfig(window=16, windows_per_neuron=2, val_windows_per_neuron=2, **kw),
                              data, CPU)


def test_the_input_is_the_embedding_then_the_statistics(data):
    task = _task(data, classifier_input="embedding+features")
    emb = np.random.default_rng(0).normal(size=(data.n_neurons, 4))
    x = task.classifier_input(emb)
    np.testing.assert_array_equal(x[:, :4], emb)
    np.testing.assert_allclose(x[:, 4:], activity_features(data, 65.0))
    assert _task(data, classifier_input="embedding").classifier_input(emb) is emb


@pytest.mark.parametrize("classifier", ["svm", "logistic"])
def test_a_constant_embedding_with_the_statistics_scores_as_the_features_row(data, classifier):
    """A constant embedding adds nothing: the classifier then sees exactly the ``features`` row's input."""
    task = _task(data, classifier_input="embedding+features", classifier=classifier)
    scores = task.evaluate(_model(task, constant=True))
    reference = task.references()["features"]
    for k in METRICS:
        assert scores[k] == pytest.approx(reference[k])
    # the embedding alone is then uninformative: EC/IN at the majority-class level at best
    alone = _task(data, classifier=classifier, classifier_input="embedding").evaluate(_model(task, constant=True))
    assert alone["accuracy (subclass)"] < reference["accuracy (subclass)"]


def test_predictions_use_the_same_input(data):
    task = _task(data, classifier_input="embedding+features")
    m = _model(task, constant=False)
    pred = task.predict(m)
    assert pred["embedding"].shape == (data.n_neurons, 4)  # the written embedding is the model's alone
    scored = task.evaluate(m, predictions=None)
    test = (data.split == "test") & data.labels[1].labelled()
    acc = np.mean(pred["subclass_pred"][test] == data.labels[1].values[test])
    assert scored["accuracy (subclass)"] == pytest.approx(acc)


def test_an_unknown_input_is_refused(tmp_path):
    from blend_core.api import BlendError, load_config, load_plugins

    path = tmp_path / "c.yaml"
    path.write_text("data: {type: spatial_synthetic}\ntask: {type: neuron_identity, classifier_input: genes}\n"
                    "backbone: {type: neuprint}\n")
    with pytest.raises(BlendError, match=r"task.classifier_input: expected one of 'embedding', 'embedding\+features'"):
        load_config(path, load_plugins().registry)


def test_auto_picks_the_classifier_that_wins_leaving_one_training_group_out():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from blend_spatial.classify import choose_classifier

    rng = np.random.default_rng(0)
    n = 240
    groups = np.repeat(np.array(["a", "b", "c", "d"]), n // 4)
    x = rng.normal(size=(n, 3))
    y = np.where(np.abs(x[:, 0]) < 0.7, "EC", "IN")  # EC between the IN cells: only the svm separates it
    fit = groups != "d"  # "d" is the held-out animal
    kind, scores = choose_classifier(x, y, fit, groups, ["EC", "IN"])
    by_hand = {}
    for name, clf in (("svm", SVC(kernel="rbf", class_weight="balanced")),
                      ("logistic", LogisticRegression(max_iter=2000, class_weight="balanced"))):
        acc = []
        for g in "abc":
            model = make_pipeline(StandardScaler(), clf).fit(x[fit & (groups != g)], y[fit & (groups != g)])
            acc.append(np.mean(model.predict(x[groups == g]) == y[groups == g]))
        by_hand[name] = np.mean(acc)
    assert scores == pytest.approx(by_hand)
    assert kind == "svm" and scores["svm"] > scores["logistic"] + 0.1
    # the held-out animal's labels never enter the choice
    y2 = y.copy()
    y2[~fit] = rng.permutation(y2[~fit])
    assert choose_classifier(x, y2, fit, groups, ["EC", "IN"]) == (kind, scores)


def test_auto_in_the_task_reports_its_choice_and_ignores_the_held_out_labels(data):
    task = _task(data, classifier="auto")
    m = _model(task, constant=False)
    scores = task.evaluate(m)
    assert scores["classifier (EC/IN)"] in ("svm", "logistic") and scores["classifier (subclass)"] in ("svm", "logistic")
    shuffled = attrs.evolve(data, labels=tuple(
        attrs.evolve(lab, values=np.where(data.split == "test", np.random.default_rng(1).permutation(lab.values), lab.values))
        for lab in data.labels))
    again = _task(shuffled, classifier="auto").evaluate(m)
    assert again["classifier (EC/IN)"] == scores["classifier (EC/IN)"]
    assert again["classifier (subclass)"] == scores["classifier (subclass)"]
