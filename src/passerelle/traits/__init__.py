"""Computed traits per person (aggregates and built-ins) and the CLV models behind them."""

from passerelle.lazy import lazy_exports

# Submodule -> its public names, imported on first use: importing one light submodule
# must not pull in the heavy ones (scipy, pandas, lifetimes).
_EXPORTS = {
    "clv": "BGNBDParams Fit FitError GammaGammaParams customer_lifetime_value "
           "expected_average_spend expected_purchases fit_bgnbd fit_gamma_gamma "
           "probability_alive",
    "compute": "TraitsSummary compute_traits",
    "store": "TRAIT_DEFINITIONS TRAITS TRAITS_HISTORY changed_since",
}
__all__ = sorted(n for names in _EXPORTS.values() for n in names.split())
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
