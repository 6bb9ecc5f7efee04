"""The neuron-identity task and the NeuPRINT backbone: inputs, fusions, distillation, the backbone contract."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from blend_core.api import BlendModel, FeatureDims, FeatureLoss, LinearConfig, build_linear, check_backbone, fused_dims
from blend_spatial.anndata_source import AnnDataConfig, AnnDataSource
from blend_spatial.neuprint import NeuPRINTConfig, build_neuprint
from blend_spatial.task import NeuronIdentityConfig, NeuronIdentityTask

CPU = torch.device("cpu")
SMALL = NeuPRINTConfig(embedding_dim=4, hidden_dim=8)


@pytest.fixture(scope="module")
def data(tiny_dir):
    return AnnDataSource(AnnDataConfig(path=str(tiny_dir))).load()


@pytest.fixture(scope="module")
def task(data):
    # svm on the embedding alone: what these tests pin down (``auto`` and the statistics as input:
    # test_classifier_input.py)
    config = NeuronIdentityConfig(window=16, windows_per_neuron=3, val_windows_per_neuron=2, classifier="svm",
                                  classifier_input="embedding")
    return NeuronIdentityTask(config, data, CPU)


def model(task, fusion=None, config=SMALL, seed=0):
    torch.manual_seed(seed)
    encoder = build_linear(LinearConfig(out_dim=3), task.behavior_dim) if fusion else None
    return BlendModel(build_neuprint(config, fused_dims(task.dims, encoder, fusion or "add")), encoder, fusion or "add")


def test_batches_cover_every_neuron_in_train_and_val_frames(task, data):
    gen = torch.Generator().manual_seed(0)
    train = torch.cat(list(task.batches("train", 100, gen)))
    assert train.shape == (data.n_neurons * 3, 2)
    assert torch.equal(torch.bincount(train[:, 0]), torch.full((data.n_neurons,), 3))
    assert train[:, 1].min() >= 0 and train[:, 1].max() + 16 < 640  # inside the training frames (80% of 800)
    val = torch.cat(list(task.batches("val", 100, None)))
    assert val[:, 1].min() >= 640 and val[:, 1].max() + 16 <= 799
    assert torch.equal(val, torch.cat(list(task.batches("val", 7, None))))  # reproducible
    test = torch.cat(list(task.batches("test", 100, None)))
    assert set(test[:, 0].tolist()) == set(np.flatnonzero(data.split == "test").tolist())


def test_inputs_are_aligned_and_population_excludes_the_neuron(task, data):
    batch = torch.tensor([[45, 100], [3, 7]])  # neuron 45 is in session 1 (40 neurons per session)
    inp = task.inputs(batch, None)
    assert inp.x.shape == (2, 16, 1) and inp.meta["target"].shape == (2, 16, 1)
    assert inp.extra["population"].shape == (2, 16, 4) and inp.behavior.shape == (2, 16, 2)
    act = task.act.numpy()
    np.testing.assert_allclose(inp.x[0, :, 0], act[45, 100:116])
    np.testing.assert_allclose(inp.meta["target"][0, :, 0], act[45, 101:117])
    others = act[40:80][np.arange(40) != 5][:, 101:117]  # session 1 without neuron 45, at the predicted frames
    np.testing.assert_allclose(inp.extra["population"][0, :, 0], others.mean(0), atol=1e-5)
    np.testing.assert_allclose(inp.extra["population"][0, :, 1], others.std(0), atol=1e-3)
    pos = data.sessions[1].positions
    near = (np.linalg.norm(pos - pos[5], axis=1) <= 65.0) & (np.arange(40) != 5)
    if near.any():
        np.testing.assert_allclose(inp.extra["population"][0, :, 2], act[40:80][near][:, 101:117].mean(0), atol=1e-5)
    beh = data.sessions[1].behavior[101:117]
    z = np.corrcoef(inp.behavior[0, :, 0].numpy(), beh[:, 0])[0, 1] if beh[:, 0].std() > 0 else 1.0
    assert z > 0.999  # behavior (z-scored) at the predicted frames


@pytest.mark.parametrize("fusion", ["add", "concat"])
@pytest.mark.parametrize("kind", ["gru", "tcn", "transformer"])
def test_teacher_fusions_and_sequence_models_run_and_use_behavior(task, fusion, kind):
    config = attrs.evolve(SMALL, model=kind, num_layers=2 if kind != "gru" else 1)
    teacher = model(task, fusion, config).eval()
    inp = task.inputs(next(task.batches("train", 32, None)), None)
    out = teacher(inp)
    assert out.log_rates.shape == (32, 16, 1)
    assert [f.shape for f in out.features] == [(32, 4), (32, 16, 8)]
    assert torch.isfinite(task.loss(out, None, inp))
    inp.behavior = inp.behavior + 1.0
    assert not torch.allclose(teacher(inp).log_rates, out.log_rates)


def test_the_model_is_causal(task):
    m = model(task).eval()
    inp = task.inputs(next(task.batches("train", 8, None)), None)
    out = m(inp).log_rates
    inp.x = inp.x.clone()
    inp.x[:, 10:] += 5.0
    later = m(inp).log_rates
    torch.testing.assert_close(later[:, :10], out[:, :10])
    assert not torch.allclose(later[:, 10:], out[:, 10:])


def test_feature_distillation_reaches_the_student_embeddings(task):
    teacher, student = model(task, "add", seed=1), model(task, seed=2)
    loss = FeatureLoss(FeatureDims(student=student.feature_dims, teacher=teacher.feature_dims), layers=(0,))
    inp = task.inputs(next(task.batches("train", 16, None)), None)
    with torch.no_grad():
        target = teacher(inp)
    loss(student(inp), target).backward()
    grad = student.backbone.embedding.weight.grad
    assert grad[inp.extra["neuron"]].abs().sum() > 0
    assert grad.abs().sum(1).count_nonzero() == len(set(inp.extra["neuron"].tolist()))


def test_neuprint_passes_the_backbone_conformance_kit():
    """The kit knows no task inputs: wrap the backbone so it draws neuron ids and population inputs."""

    class WithTaskInputs(torch.nn.Module):
        def __init__(self, config, dims):
            super().__init__()
            self.inner = build_neuprint(config, attrs.evolve(
                dims, output_dim=1, extra={"n_neurons": 5, "population_dim": 4, "activity_dim": dims.input_dim}))
            self.feature_dims = self.inner.feature_dims
            self.out = torch.nn.Linear(1, dims.output_dim)

        def forward(self, x, context=None):
            # per-trial inputs derived from the trial itself keep trials independent
            neuron = x.sum((1, 2)).long() % 5
            population = torch.stack([x.mean(-1), x.std(-1), x.amax(-1), x.amin(-1)], -1)
            out = self.inner(x, context, neuron=neuron, population=population)
            return attrs.evolve(out, log_rates=self.out(out.log_rates))

    for kind in ("gru", "tcn", "transformer"):
        check_backbone(WithTaskInputs, NeuPRINTConfig(embedding_dim=4, hidden_dim=8, model=kind, dropout=0.1))


def test_evaluate_scores_the_held_out_animal_and_predict_covers_every_neuron(task, data):
    m = model(task)
    metrics = task.evaluate(m)
    assert {"accuracy (EC/IN)", "macro F1 (EC/IN)", "accuracy (subclass)", "macro F1 (subclass)",
            "next-frame R2 (val)"} <= set(metrics)
    n_test = int((data.split == "test").sum())
    assert sum(metrics["support (EC/IN)"]) == n_test
    assert sum(metrics["support (subclass)"]) == int(((data.split == "test") & data.labels[1].labelled()).sum())
    assert np.array(metrics["confusion (subclass)"]).shape == (5, 5)
    pred = task.predict(m)
    assert pred["embedding"].shape == (data.n_neurons, 4)
    assert pred["subclass_proba"].shape == (data.n_neurons, 5)
    np.testing.assert_allclose(pred["subclass_proba"].sum(1), 1, atol=1e-5)
    assert set(pred["ei_class_pred"]) <= {"EC", "IN"}


@pytest.mark.parametrize("classifier", ["svm", "mlp", "knn"])
def test_other_classifiers(data, classifier):
    t = NeuronIdentityTask(NeuronIdentityConfig(window=16, classifier=classifier, knn_neighbors=5), data, CPU)
    metrics = t.evaluate(model(t))
    assert 0 <= metrics["accuracy (subclass)"] <= 1


def test_too_short_sessions_are_refused(data):
    from blend_core.api import DataError

    with pytest.raises(DataError, match=r"SB026_s0.h5ad: 800 frames are too few for task.window=200 with val_fraction=0.2"):
        NeuronIdentityTask(NeuronIdentityConfig(window=200), data, CPU)


def _features_by_hand(session, behavior: bool) -> np.ndarray:
    """The documented feature set, one neuron at a time with plain numpy (independent of blend_spatial.features)."""
    a = session.activity.astype(np.float64)
    n, frames = a.shape
    rows = []
    for i in range(n):
        x = a[i]
        z = (x - x.mean()) / x.std()
        row = [x.mean(), x.std(), np.mean(z**3)]
        row += [np.sum(z[k:] * z[:-k]) / frames for k in (1, 2, 4, 8, 16)]
        others = np.delete(a, i, axis=0)
        others = (others - others.mean(1, keepdims=True)) / others.std(1, keepdims=True)
        pop = np.corrcoef(x, others.mean(0))[0, 1]
        near = [j for j in range(n) if j != i and np.linalg.norm(session.positions[j] - session.positions[i]) <= 65.0]
        nbr = 0.0
        if near:
            zn = (a[near] - a[near].mean(1, keepdims=True)) / a[near].std(1, keepdims=True)
            nbr = np.corrcoef(x, zn.mean(0))[0, 1]
        row += [pop, nbr, nbr - pop]
        if behavior:
            row += [np.corrcoef(x, session.behavior[:, k])[0, 1] for k in range(session.behavior.shape[1])]
        rows.append(row)
    return np.array(rows)


def test_reference_rows_match_an_independent_computation(task, data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from blend_spatial.features import activity_features, feature_names

    from sklearn.svm import SVC

    rows = task.references()  # the task's classifier, svm; and the features under logistic regression
    assert set(rows) == {"features", "features+behavior", "features (logistic)"}
    test = data.split == "test"
    for name, behavior in (("features", False), ("features+behavior", True), ("features (logistic)", False)):
        by_hand = np.concatenate([_features_by_hand(s, behavior) for s in data.sessions])
        assert by_hand.shape[1] == len(feature_names(data.behavior_names if behavior else ()))
        np.testing.assert_allclose(activity_features(data, 65.0, behavior=behavior), by_hand, atol=1e-6)
        for lab in data.labels:
            fit = (data.split == "train") & lab.labelled()
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")
                                if "logistic" in name else SVC(kernel="rbf", class_weight="balanced"))
            clf.fit(by_hand[fit], lab.values[fit])
            scored = test & lab.labelled()
            pred = clf.predict(by_hand[scored])
            assert rows[name][f"accuracy ({lab.name})"] == pytest.approx(np.mean(pred == lab.values[scored]))
            assert rows[name][f"macro F1 ({lab.name})"] == pytest.approx(
                f1_score(lab.values[scored], pred, labels=list(lab.classes), average="macro", zero_division=0))
            assert sum(rows[name][f"support ({lab.name})"]) == scored.sum()
    # the same metric keys as a model's row, except the dynamical model's fit
    model_keys = set(task.evaluate(model(task))) - {"next-frame R2 (val)"}
    assert set(rows["features"]) == model_keys
    # behavior correlations carry identity in the synthetic data: the behavior-informed row is not worse
    assert rows["features+behavior"]["accuracy (subclass)"] >= rows["features"]["accuracy (subclass)"] - 0.05


def test_without_behavior_there_is_one_reference_row(data):
    import attrs as _attrs

    no_behavior = _attrs.evolve(data, sessions=tuple(_attrs.evolve(s, behavior=None) for s in data.sessions),
                                behavior_names=())
    t = NeuronIdentityTask(NeuronIdentityConfig(window=16), no_behavior, CPU)
    assert list(t.references()) == ["features", "features (logistic)"]  # no features+behavior


def test_by_default_an_epoch_covers_each_neurons_training_frames_once(data):
    t = NeuronIdentityTask(NeuronIdentityConfig(window=16), data, CPU)  # 640 training frames of 800
    samples = torch.cat(list(t.batches("train", 256, torch.Generator().manual_seed(0))))
    assert torch.equal(torch.bincount(samples[:, 0]), torch.full((data.n_neurons,), 640 // 16))
    with pytest.raises(ValueError, match=r"'windows_per_neuron' must be >= 1: 0"):  # the config's validator
        NeuronIdentityConfig(window=16, windows_per_neuron=0)


def test_normalize_per_neuron_per_session_or_not(data):
    """``neuron``: every neuron has unit variance on its training frames; ``session``: one scale per session,
    so that neurons keep their relative amplitudes; ``none``: the raw activity."""
    s, end = data.sessions[0], int(np.floor(data.sessions[0].n_frames * 0.8))
    raw = s.activity.astype(np.float64)
    n = s.n_neurons
    acts = {}
    for mode in ("neuron", "session", "none"):
        t = NeuronIdentityTask(NeuronIdentityConfig(window=16, normalize=mode), data, CPU)
        acts[mode] = t.act[:n, : s.n_frames].double().numpy()
    np.testing.assert_allclose(acts["none"], raw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts["neuron"][:, :end].std(1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(acts["neuron"][:, :end].mean(1), 0.0, atol=1e-4)
    ref = raw[:, :end]
    np.testing.assert_allclose(acts["session"], (raw - ref.mean()) / ref.std(), rtol=1e-4, atol=1e-4)
    ratio = acts["session"][:, :end].std(1) / raw[:, :end].std(1)  # one common scale for the session
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)


def test_normalize_rejects_an_unknown_mode(tmp_path):
    from blend_core.api import BlendError
    from blend_core.api import load_config
    from blend_core.api import load_plugins

    path = tmp_path / "c.yaml"
    path.write_text("data: {type: spatial_synthetic}\ntask: {type: neuron_identity, normalize: true}\n"
                    "backbone: {type: neuprint}\n")
    with pytest.raises(BlendError, match=r"task.normalize: expected one of 'neuron', 'session', 'none'"):
        load_config(path, load_plugins().registry)


def test_bad_task_values_are_one_line_naming_the_key(tmp_path):
    """The task's config class validates with blend's public validators: refused before any data is read."""
    from blend_core.api import ConfigError, load_config, load_plugins

    path = tmp_path / "c.yaml"
    for options, line in [("val_fraction: 1.0", "task.val_fraction: must be in (0.0, 1.0), got 1.0"),
                          ("windows_per_neuron: 0", "task.windows_per_neuron: must be >= 1, got 0"),
                          ("radius_um: -5", "task.radius_um: must be a finite number > 0, got -5.0")]:
        path.write_text(f"data: {{type: spatial_synthetic}}\ntask: {{type: neuron_identity, {options}}}\n"
                        "backbone: {type: neuprint}\n")
        with pytest.raises(ConfigError) as err:
            load_config(path, load_plugins().registry)
        assert err.value.problems == [line]


def test_svm_separates_a_class_that_lies_between_the_others():
    """The reason for ``classifier: svm``: EC cells sit between inhibitory types in embedding space,
    which no linear boundary separates."""
    from blend_spatial.classify import fit_predict

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 0.5, 40), rng.normal(0, 0.5, 80), rng.normal(3, 0.5, 40)])[:, None]
    y = np.array(["IN"] * 40 + ["EC"] * 80 + ["IN"] * 40)
    fit = np.arange(len(y)) % 2 == 0
    accuracy = {kind: np.mean(fit_predict(x, y, fit, ["EC", "IN"], kind)[0][~fit] == y[~fit])
                for kind in ("logistic", "svm")}
    assert accuracy["svm"] > 0.95 and accuracy["logistic"] < 0.8
    pred, scores = fit_predict(x, y, fit, ["EC", "IN"], "svm")
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-6)
    assert np.array_equal(pred, np.array(["EC", "IN"])[scores.argmax(1)])


def test_with_another_classifier_the_features_are_also_scored_under_logistic(task, data):
    linear = NeuronIdentityTask(attrs.evolve(task.config, classifier="logistic"), data, CPU).references()
    rows = task.references()  # svm, the task's
    assert list(rows) == ["features", "features+behavior", "features (logistic)"]
    assert rows["features (logistic)"] == linear["features"]
    assert list(linear) == ["features", "features+behavior"]
