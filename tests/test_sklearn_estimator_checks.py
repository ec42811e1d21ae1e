"""scikit-learn's estimator checks (``parametrize_with_checks``) on fastbp's estimators.

One instance per solver and estimator, with ``max_iter=100`` as in scikit-learn's own common
tests. No check is expected to fail: the list of expected failures is empty, and
``xfail_strict=True`` would turn any entry added later that passes into an error.
(The only MLP entries in scikit-learn's own list are per-check *parameters* for
``check_sample_weight_equivalence_on_dense_data``; that check passes here with every solver,
because the check's data sets are smaller than the default batch of 200 rows, so the
stochastic solvers run full batches.)
"""
import warnings

import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra (fastbp[sklearn]); "
                                      "the test extra installs it")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp._sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ESTIMATORS = [
    Estimator(solver=solver, max_iter=100)
    for Estimator in (MLPClassifier, MLPRegressor)
    for solver in ("adam", "sgd", "lbfgs")
]

# check name -> reason a user would accept; empty: everything passes.
EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # max_iter=100 is short for some checks' data; scikit-learn's MLP warns there too.
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
