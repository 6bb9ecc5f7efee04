"""The ``spatial`` plugin: AnnData sources, the neuron-identity task, the NeuPRINT backbone, .h5ad outputs."""

from __future__ import annotations

from blend_core.api import Register, hookimpl


@hookimpl
def blend_add_data_sources(register: Register) -> None:
    from blend_spatial.anndata_source import AnnDataConfig, AnnDataSource
    from blend_spatial.synthetic import SyntheticSourceConfig, SyntheticSpatialSource

    register("anndata", AnnDataConfig, AnnDataSource,
             "calcium imaging + spatial transcriptomics sessions, one .h5ad each (neuron identity)")
    register("spatial_synthetic", SyntheticSourceConfig, SyntheticSpatialSource,
             "synthetic multi-animal sessions with cell-type-specific behavior modulation (.h5ad layout)")


@hookimpl
def blend_add_tasks(register: Register) -> None:
    from blend_spatial.task import NeuronIdentityConfig, build_task

    register("neuron_identity", NeuronIdentityConfig, build_task,
             "self-supervised neuron embeddings; identity classified on a held-out animal (accuracy, macro-F1)")


@hookimpl
def blend_add_backbones(register: Register) -> None:
    from blend_spatial.neuprint import NeuPRINTConfig, build_neuprint

    register("neuprint", NeuPRINTConfig, build_neuprint,
             "NeuPRINT-style per-neuron embedding + implicit dynamical model (neuron_identity task)")


@hookimpl
def blend_run_finished(run) -> None:
    """Write ``OUT/h5ad/<session>.blend.h5ad`` for neuron-identity runs."""
    from blend_spatial.data import NeuronIdentityData

    if not isinstance(run.data, NeuronIdentityData):
        return
    from blend_spatial.output import write_h5ad

    write_h5ad(run.data, run.predictions, run.out_dir / "h5ad")
