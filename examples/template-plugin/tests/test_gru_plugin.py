"""A third-party plugin tests itself with blend's conformance kit."""

from blend_gru.plugin import GRUBackbone, GRUConfig

from blend_core.testing import check_backbone


def test_gru_backbone_conforms():
    check_backbone(GRUBackbone, GRUConfig(hidden_dim=8, num_layers=1), input_dim=5, output_dim=7, seq_len=6,
                   context_dim=3)
