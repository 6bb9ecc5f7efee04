"""``train.monitor``: does early stopping on the validation co-bps beat early stopping on the loss?

Computing the score draws no random number, so one training follows both criteria: two
``EarlyStopping`` trackers watch the validation loss and the validation co-bps, each keeps its
best weights until its patience runs out, and training goes on until both have stopped. Each
criterion's weights are then scored on the test trials. The student distils from the teacher
stopped on the loss. Prints one JSON line per (file, seed); docs/experiments.md has the numbers.

    for ds in 1 2 3; do for seed in 0 1 2; do
        python benchmarks/monitor.py $ds $seed >> monitor.jsonl
    done; done
"""

from __future__ import annotations

import copy
import json
import sys

import attrs
import torch

from blend_core.build import build_task, load_data
from blend_core.config import build_config
from blend_core.controls import build_any_role
from blend_core.neural_task import score_rates
from blend_core.plugins import load_plugins
from blend_core.training import EarlyStopping, _state_copy, fit, validation_loss

RAW = {"data": {"type": "synthetic", "n_trials": 160},
       "backbone": {"type": "ndt", "num_layers": 2, "d_model": 32, "ffn_dim": 64, "dropout": 0.2},
       "privileged": {"type": "mlp", "fusion": "concat"}, "distillation": {"alpha": 0.5, "type": "correlation"},
       "train": {"max_epochs": 120, "batch_size": 16, "lr": 0.005, "warmup_steps": 30, "patience": 15,
                 "device": "cpu", "progress": False}}


class Done(Exception):
    """Both criteria have stopped: training need not go on."""


def main(file_seed: int, seed: int) -> dict:
    torch.set_num_threads(1)
    plugins = load_plugins(autoload=False)
    raw = copy.deepcopy(RAW)
    raw["data"]["seed"], raw["train"]["seed"] = file_seed, seed
    config = build_config(raw, plugins.registry)
    _, data = load_data(config, plugins.registry)
    device = torch.device("cpu")
    task = build_task(config, plugins.registry, data, device)
    out: dict = {"file": file_seed, "seed": seed}
    teacher = None
    for role in ("teacher", "baseline", "student"):
        model, objective = build_any_role(role, config, plugins.registry, task, device, teacher)
        trackers = {"loss": EarlyStopping(config.train.patience), "score": EarlyStopping(config.train.patience)}
        best: dict = {}
        stopped = dict.fromkeys(trackers, False)
        epoch = [0]

        def score(m, trackers=trackers, best=best, stopped=stopped, epoch=epoch) -> float:
            s = task.val_score(m)
            values = {"loss": float(validation_loss(m, task, config.train, device)), "score": -s}
            for name, value in values.items():
                if stopped[name]:
                    continue
                if trackers[name].update(value, epoch[0]):
                    best[name] = (_state_copy(m), epoch[0])
                stopped[name] = trackers[name].should_stop(epoch[0])
            epoch[0] += 1
            if all(stopped.values()):
                raise Done
            return s

        try:  # patience off in fit itself: the trackers above decide
            fit(model, task, attrs.evolve(config.train, patience=10**6), device, role=role, objective=objective,
                score=score)
        except Done:
            pass
        for name, (state, at) in best.items():
            model.load_state_dict(state)
            rates = task.predict(model)["rates"]
            out[f"{role}/{name}"] = {"epoch": at, "test": score_rates(data, rates, "test")["co-bps"],
                                     "val": score_rates(data, rates, "val")["co-bps"]}
        out[f"{role}/epochs"] = epoch[0]
        model.load_state_dict(best["loss"][0])
        model.eval()
        if role == "teacher":
            teacher = model
            for p in teacher.parameters():
                p.requires_grad_(False)
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
