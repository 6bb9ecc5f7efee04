"""blend-nwb: NWB sessions and the NLB'21 datasets for blend; NLB submissions and scoring."""

__version__ = "0.1.0"
