"""Bijections with log-determinants and the flow densities built from them (DESIGN.md §4).

Sampling direction: x = f(z) with z from the base; ``forward_and_log_det`` returns
log|det ∂f/∂z|, ``inverse_and_log_det`` returns log|det ∂f⁻¹/∂x| (the negative at the image).
"""

from qvfe.flows.base import MLP, Bijection, Chain
from qvfe.flows.cnf import ContinuousFlow
from qvfe.flows.coupling import AffineCoupling, real_nvp
from qvfe.flows.density import FlowDensity, StandardNormal
from qvfe.flows.made import MADE, MaskedAutoregressive, made_masks, masked_autoregressive_flow

__all__ = [
    "MADE",
    "MLP",
    "AffineCoupling",
    "Bijection",
    "Chain",
    "ContinuousFlow",
    "FlowDensity",
    "MaskedAutoregressive",
    "StandardNormal",
    "made_masks",
    "masked_autoregressive_flow",
    "real_nvp",
]
