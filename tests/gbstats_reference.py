"""Regenerate the gbstats numbers pinned in tests/test_measure_experiments.py.

gbstats 0.8.0 requires numpy < 2 and pandas < 2, which conflict with Passerelle's, so it
runs in its own virtual environment and these numbers are pinned in the tests:

    python -m venv /tmp/gbvenv && /tmp/gbvenv/bin/pip install gbstats==0.8.0
    /tmp/gbvenv/bin/python tests/gbstats_reference.py

Not collected by pytest (no ``test_`` prefix). The inputs are the ones in the tests.
"""

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

MEAN_A = SampleMeanStatistic(n=3407, sum=76223.4, sum_squares=3817445.2)
MEAN_B = SampleMeanStatistic(n=3461, sum=81943.1, sum_squares=4203112.7)
PROP_A = ProportionStatistic(n=4000, sum=360)
PROP_B = ProportionStatistic(n=4012, sum=412)


def cuped_pair():
    a = RegressionAdjustedStatistic(
        n=3000, post_statistic=SampleMeanStatistic(n=3000, sum=6200, sum_squares=58000),
        pre_statistic=SampleMeanStatistic(n=3000, sum=5900, sum_squares=52000),
        post_pre_sum_of_products=47000, theta=0)
    b = RegressionAdjustedStatistic(
        n=3050, post_statistic=SampleMeanStatistic(n=3050, sum=6900, sum_squares=63500),
        pre_statistic=SampleMeanStatistic(n=3050, sum=6050, sum_squares=54000),
        post_pre_sum_of_products=49500, theta=0)
    return a, b


def show(name, r):
    print(name, repr(r.expected), [repr(x) for x in r.ci],
          repr(getattr(r, "p_value", None)), repr(getattr(r, "chance_to_win", None)),
          [repr(x) for x in getattr(r, "risk", [])])


for kind in ("relative", "absolute"):
    show(f"ttest-mean-{kind}", TwoSidedTTest(MEAN_A, MEAN_B,
                                            FrequentistConfig(difference_type=kind)).compute_result())
    show(f"ttest-prop-{kind}", TwoSidedTTest(PROP_A, PROP_B,
                                            FrequentistConfig(difference_type=kind)).compute_result())
    show(f"seq-mean-{kind}", SequentialTwoSidedTTest(
        MEAN_A, MEAN_B, SequentialConfig(difference_type=kind)).compute_result())
    show(f"seq-prop-{kind}", SequentialTwoSidedTTest(
        PROP_A, PROP_B, SequentialConfig(difference_type=kind)).compute_result())
    show(f"bayes-mean-{kind}", EffectBayesianABTest(
        MEAN_A, MEAN_B, EffectBayesianConfig(difference_type=kind)).compute_result())
    show(f"bayes-prop-{kind}", EffectBayesianABTest(
        PROP_A, PROP_B, EffectBayesianConfig(difference_type=kind)).compute_result())
    a, b = cuped_pair()
    test = TwoSidedTTest(a, b, FrequentistConfig(difference_type=kind))
    print("theta", repr(test.stat_a.theta))
    show(f"cuped-{kind}", test.compute_result())
show("bayes-prop-proper-prior", EffectBayesianABTest(PROP_A, PROP_B, EffectBayesianConfig(
    prior_effect=GaussianPrior(mean=0.0, variance=0.09, proper=True))).compute_result())
show("seq-prop-tuning-20000", SequentialTwoSidedTTest(
    PROP_A, PROP_B, SequentialConfig(sequential_tuning_parameter=20000)).compute_result())
print("srm2", repr(check_srm([5050, 4950], [0.5, 0.5])))
print("srm3", repr(check_srm([1010, 5120, 4870], [0.1, 0.45, 0.45])))
