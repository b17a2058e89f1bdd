"""Computed traits per person (aggregates and built-ins) and the CLV models behind them."""

from passerelle.identity.attribution import person_events, person_order_lines, person_orders
from passerelle.traits.clv import (
    BGNBDParams,
    Fit,
    FitError,
    GammaGammaParams,
    customer_lifetime_value,
    expected_average_spend,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
)
from passerelle.traits.compute import TraitsSummary, compute_traits
from passerelle.traits.store import TRAIT_DEFINITIONS, TRAITS, TRAITS_HISTORY, changed_since

__all__ = [
    "TRAITS",
    "TRAITS_HISTORY",
    "TRAIT_DEFINITIONS",
    "BGNBDParams",
    "Fit",
    "FitError",
    "GammaGammaParams",
    "TraitsSummary",
    "changed_since",
    "compute_traits",
    "customer_lifetime_value",
    "expected_average_spend",
    "expected_purchases",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "person_events",
    "person_order_lines",
    "person_orders",
    "probability_alive",
]
