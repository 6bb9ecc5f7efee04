"""Built-in privileged-feature encoders, registered like any plugin's."""

from blend_core import encoders as enc
from blend_core.hookspecs import hookimpl
from blend_core.registry import Register


@hookimpl
def blend_add_encoders(register: Register) -> None:
    register("identity", enc.IdentityConfig, enc.build_identity, "behavior as is")
    register("linear", enc.LinearConfig, enc.build_linear, "a learned linear map of behavior")
    register("mlp", enc.MLPConfig, enc.build_mlp, "a learned MLP of behavior")
