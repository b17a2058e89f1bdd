"""Measurement: campaign results, attribution, experiments, intervals.

Sufficient statistics (counts, sums, sums of squares per arm, channel or day) come out of
SQL; the estimators here are pure functions over them, one module per family. See
``docs/measurement.md`` for what each figure means.
"""

from passerelle.lazy import lazy_exports

# Submodule -> its public names, imported on first use: importing one light submodule
# must not pull in the heavy ones (scipy, pandas, lifetimes).
_EXPORTS = {
    "attribution": "Credit PathCount compare_models journeys markov path_counts paths_from_rows "
                   "rule_based rule_weights shapley",
    "bootstrap": "bootstrap_sums poisson_weight poisson_weight_expr",
    "campaigns": "CampaignResult CurrencyError Incrementality campaign_result campaign_stats "
                 "check_currencies holdout_stats incrementality spend_totals",
    "design": "SampleSize SrmResult assign assign_expr benjamini_hochberg holm "
              "sample_size_means sample_size_proportions srm_check",
    "experiments": "ArmStats BayesianResult CupedArm TestResult bayesian cuped "
                   "proportions_ztest sequential welch_ttest",
    "intervals": "Interval MeasureError Moments newcombe percentile_interval ratio_of_sums "
                 "relative_lift welch_diff welch_mean wilson",
}
__all__ = sorted(n for names in _EXPORTS.values() for n in names.split())
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
