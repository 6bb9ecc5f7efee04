"""Built-in tasks, registered like any plugin's."""

from blend_core.hookspecs import hookimpl
from blend_core.neural_task import MaskedModelingConfig, build_neural_task
from blend_core.registry import Register


@hookimpl
def blend_add_tasks(register: Register) -> None:
    register("neural", MaskedModelingConfig, build_neural_task,
             "masked modeling of binned spikes; NLB metrics (co-bps, vel R2, psth R2, fp-bps)")
