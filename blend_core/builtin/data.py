"""Built-in data sources, registered like any plugin's."""

from blend_core.hookspecs import hookimpl
from blend_core.registry import Register
from blend_core.synthetic import SyntheticConfig, SyntheticSource


@hookimpl
def blend_add_data_sources(register: Register) -> None:
    register("synthetic", SyntheticConfig, SyntheticSource,
             "rotational latent dynamics -> Poisson spikes, behavior as a nonlinear readout")
