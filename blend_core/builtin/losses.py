"""Built-in distillation losses, registered like any plugin's."""

from blend_core import distillation as d
from blend_core.hookspecs import hookimpl
from blend_core.registry import Register


@hookimpl
def blend_add_distillation_losses(register: Register) -> None:
    register("hard", d.HardConfig, d.build_hard, "MSE between log-rates")
    register("soft", d.SoftConfig, d.build_soft, "tempered KL over neurons (Hinton)")
    register("poisson_kl", d.PoissonKLConfig, d.build_poisson_kl, "KL between Poisson rate distributions")
    register("feature", d.FeatureConfig, d.build_feature, "MSE between projected layer features")
    register("correlation", d.CorrelationConfig, d.build_correlation, "hard + MSE of neuron correlation matrices")
