"""Energies: ``Energy``, ``ConditionalEnergy``, the logical operators and analytic energies."""

from conceptebm.energies.analytic import Gaussian, GaussianMixture
from conceptebm.energies.base import Bound, ConditionalEnergy, Energy, FeatureHead
from conceptebm.energies.late import LateEnergyNet
from conceptebm.energies.nets import ConvEnergyNet, JointConcept, build_energy_net
from conceptebm.energies.ops import (
    And,
    Not,
    NotAny,
    NotNear,
    Or,
    Scale,
    ScaledConditional,
    StepMatched,
    conditioned_energy,
    require_grounded,
    split_labels,
)

__all__ = [
    "Energy",
    "ConditionalEnergy",
    "Bound",
    "FeatureHead",
    "And",
    "Or",
    "Not",
    "NotAny",
    "NotNear",
    "Scale",
    "ScaledConditional",
    "StepMatched",
    "require_grounded",
    "split_labels",
    "conditioned_energy",
    "Gaussian",
    "GaussianMixture",
    "ConvEnergyNet",
    "LateEnergyNet",
    "JointConcept",
    "build_energy_net",
]
