"""Built-in backbones, registered like any plugin's."""

from blend_core.backbones.lfads import LFADSConfig, build_lfads
from blend_core.backbones.ndt import NDTConfig, build_ndt
from blend_core.backbones.stndt import STNDTConfig, build_stndt
from blend_core.hookspecs import hookimpl
from blend_core.registry import Register


@hookimpl
def blend_add_backbones(register: Register) -> None:
    register("ndt", NDTConfig, build_ndt, "Neural Data Transformer: attention across time bins")
    register("stndt", STNDTConfig, build_stndt, "spatiotemporal NDT: attention across time and neurons")
    register("lfads", LFADSConfig, build_lfads, "LFADS-style sequential VAE with KL terms")
