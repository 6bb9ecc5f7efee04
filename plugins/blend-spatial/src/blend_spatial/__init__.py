"""blend-spatial: neuron identity from calcium activity and spatial transcriptomics (AnnData), for blend."""

__version__ = "0.1.0"
