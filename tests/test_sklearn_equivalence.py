"""fastbp's MLPClassifier/MLPRegressor give scikit-learn's numbers.

Every case fits scikit-learn's estimator and fastbp's with the same data, hyper-parameters
and ``random_state`` (float64) and compares: ``coefs_``/``intercepts_`` to a relative 1e-6
(``|fastbp - sklearn| <= 1e-6 * (|sklearn| + max|sklearn|)`` elementwise, i.e. relative to
each array's scale), the loss curve and validation scores, ``n_iter_``, ``t_``, the
``best_*`` attributes, identical class predictions and regression predictions to 1e-6.
The differences actually seen are far below the tolerance (below 1e-14 for sgd and adam,
up to a few 1e-9 for lbfgs, whose line searches amplify rounding): the tolerance leaves room
for BLAS and summation-order rounding, not for any difference in the algorithm.
"""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra (fastbp[sklearn]); "
                                      "the test extra installs it")

from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import fastbp._sklearn as fb  # noqa: E402

RTOL = 1e-6

_digits_X, _digits_y = load_digits(return_X_y=True)
X_DIGITS = _digits_X[:400] / 16.0
Y_DIGITS = _digits_y[:400]
_binary = _digits_y < 2
X_BINARY = _digits_X[_binary][:200] / 16.0
Y_BINARY = _digits_y[_binary][:200]
X_MULTILABEL, Y_MULTILABEL = make_multilabel_classification(
    n_samples=300, n_features=12, n_classes=4, random_state=0
)
X_MULTILABEL = X_MULTILABEL / X_MULTILABEL.max()
X_REG, _y_reg = make_regression(
    n_samples=300, n_features=10, n_targets=3, noise=5.0, random_state=0
)
Y_REG = _y_reg / _y_reg.std(axis=0)
Y_POISSON = np.random.RandomState(0).poisson(np.exp(0.3 * X_REG[:, :2].sum(axis=1)))
SAMPLE_WEIGHT = np.random.RandomState(1).uniform(0.1, 3.0, size=400)

DATA = {
    "digits": (X_DIGITS, Y_DIGITS),
    "binary": (X_BINARY, Y_BINARY),
    "multilabel": (X_MULTILABEL, Y_MULTILABEL),
    "reg1": (X_REG, Y_REG[:, 0]),
    "reg3": (X_REG, Y_REG),
    "poisson": (X_REG, Y_POISSON),
}

SMALL = dict(hidden_layer_sizes=(16,), random_state=0)
SGD = dict(SMALL, solver="sgd", learning_rate_init=0.05)

# (id, estimator kind, data set, parameters, with sample_weight)
CASES = [
    # classifier, multiclass: every solver and optimizer form
    ("adam", "C", "digits", dict(SMALL, max_iter=40), False),
    ("sgd-nesterov", "C", "digits", dict(SGD, max_iter=40), False),
    ("sgd-momentum", "C", "digits", dict(SGD, nesterovs_momentum=False, max_iter=40), False),
    ("sgd-plain", "C", "digits", dict(SGD, momentum=0.0, max_iter=40), False),
    ("sgd-invscaling", "C", "digits",
     dict(SGD, learning_rate="invscaling", learning_rate_init=0.5, max_iter=30), False),
    ("sgd-adaptive", "C", "digits",
     dict(SGD, learning_rate="adaptive", tol=0.05, n_iter_no_change=2, max_iter=40), False),
    ("lbfgs", "C", "digits", dict(SMALL, solver="lbfgs", max_iter=60), False),
    ("lbfgs-maxfun", "C", "digits", dict(SMALL, solver="lbfgs", max_fun=20), False),
    # early stopping (stratified split, best weights restored)
    ("adam-early", "C", "digits",
     dict(SMALL, early_stopping=True, n_iter_no_change=3, learning_rate_init=0.01,
          max_iter=60), False),
    ("sgd-early", "C", "digits",
     dict(SGD, early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
          max_iter=60), False),
    ("sgd-adaptive-early", "C", "digits",
     dict(SGD, learning_rate="adaptive", early_stopping=True, tol=0.02, n_iter_no_change=2,
          max_iter=40), False),
    ("lbfgs-ignores-early", "C", "digits",
     dict(SMALL, solver="lbfgs", early_stopping=True, max_iter=30), False),
    # stopping rule on the training loss
    ("adam-converges", "C", "digits", dict(SMALL, tol=1e-2, max_iter=200), False),
    # batches, shuffling, architecture, penalty
    ("adam-noshuffle", "C", "digits", dict(SMALL, shuffle=False, max_iter=30), False),
    ("sgd-batch37", "C", "digits", dict(SGD, batch_size=37, max_iter=20), False),
    ("adam-fullbatch", "C", "digits", dict(SMALL, batch_size=400, max_iter=30), False),
    ("adam-logistic", "C", "digits", dict(SMALL, activation="logistic", max_iter=30), False),
    ("adam-tanh", "C", "digits", dict(SMALL, activation="tanh", max_iter=30), False),
    ("adam-identity", "C", "digits", dict(SMALL, activation="identity", max_iter=30), False),
    ("sgd-two-hidden", "C", "digits",
     dict(SGD, hidden_layer_sizes=(24, 12), max_iter=30), False),
    ("lbfgs-two-hidden-tanh", "C", "digits",
     dict(SMALL, solver="lbfgs", hidden_layer_sizes=(12, 8), activation="tanh",
          max_iter=40), False),
    ("adam-alpha", "C", "digits", dict(SMALL, alpha=0.05, max_iter=30), False),
    ("adam-beta-eps", "C", "digits",
     dict(SMALL, beta_1=0.8, beta_2=0.99, epsilon=1e-6, max_iter=30), False),
    # sample weights
    ("adam-weighted", "C", "digits", dict(SMALL, max_iter=30), True),
    ("sgd-weighted", "C", "digits", dict(SGD, max_iter=30), True),
    ("lbfgs-weighted", "C", "digits", dict(SMALL, solver="lbfgs", max_iter=40), True),
    ("adam-early-weighted", "C", "digits",
     dict(SMALL, early_stopping=True, n_iter_no_change=3, max_iter=40), True),
    # binary and multilabel classification (logistic output)
    ("binary-adam", "C", "binary", dict(SMALL, max_iter=30), False),
    ("binary-lbfgs", "C", "binary", dict(SMALL, solver="lbfgs", max_iter=40), False),
    ("binary-sgd-early", "C", "binary",
     dict(SGD, early_stopping=True, n_iter_no_change=3, max_iter=40), False),
    ("multilabel-adam", "C", "multilabel", dict(SMALL, max_iter=30), False),
    ("multilabel-lbfgs", "C", "multilabel", dict(SMALL, solver="lbfgs", max_iter=40), False),
    ("multilabel-adam-early", "C", "multilabel",
     dict(SMALL, early_stopping=True, n_iter_no_change=3, max_iter=40), False),
    # regression: single and multi output, squared error and poisson
    ("reg1-adam", "R", "reg1", dict(SMALL, learning_rate_init=0.01, max_iter=40), False),
    ("reg1-sgd", "R", "reg1", dict(SMALL, solver="sgd", learning_rate_init=0.01,
                                   max_iter=40), False),
    ("reg1-lbfgs", "R", "reg1", dict(SMALL, solver="lbfgs", max_iter=60), False),
    ("reg3-adam", "R", "reg3", dict(SMALL, learning_rate_init=0.01, max_iter=40), False),
    ("reg3-lbfgs", "R", "reg3", dict(SMALL, solver="lbfgs", max_iter=60), False),
    ("reg3-adam-early", "R", "reg3",
     dict(SMALL, learning_rate_init=0.01, early_stopping=True, n_iter_no_change=3,
          max_iter=60), False),
    ("reg3-sgd-weighted", "R", "reg3",
     dict(SMALL, solver="sgd", learning_rate_init=0.005, max_iter=30), True),
    ("poisson-adam", "R", "poisson",
     dict(SMALL, loss="poisson", learning_rate_init=0.01, max_iter=40), False),
    ("poisson-lbfgs", "R", "poisson", dict(SMALL, loss="poisson", solver="lbfgs",
                                           max_iter=60), False),
]


def assert_same_model(ours, ref, X):
    """Compare every fitted attribute of two fitted estimators (see the module docstring)."""
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_",
                 "n_features_in_"):
        assert getattr(ours, name) == getattr(ref, name), name
    if hasattr(ref, "classes_"):
        np.testing.assert_array_equal(ours.classes_, ref.classes_)
    assert len(ours.coefs_) == len(ref.coefs_)
    for kind in ("coefs_", "intercepts_"):
        for i, (a, b) in enumerate(zip(getattr(ours, kind), getattr(ref, kind))):
            assert a.dtype == b.dtype and a.shape == b.shape, (kind, i)
            scale = np.abs(b).max()
            np.testing.assert_allclose(
                a, b, rtol=RTOL, atol=RTOL * scale, err_msg="%s[%d]" % (kind, i)
            )
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=RTOL)
    for name in ("loss_curve_", "validation_scores_"):
        if hasattr(ref, name):
            if getattr(ref, name) is None:
                assert getattr(ours, name) is None, name
            else:
                np.testing.assert_allclose(getattr(ours, name), getattr(ref, name),
                                           rtol=RTOL, err_msg=name)
    for name in ("best_loss_", "best_validation_score_"):
        if hasattr(ref, name):
            if getattr(ref, name) is None:
                assert getattr(ours, name) is None, name
            else:
                np.testing.assert_allclose(getattr(ours, name), getattr(ref, name),
                                           rtol=RTOL, err_msg=name)
    if hasattr(ref, "classes_"):
        np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=RTOL,
                                   atol=RTOL * np.abs(ref.predict(X)).max())
    if hasattr(ref, "predict_proba"):
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X),
                                   rtol=RTOL, atol=1e-12)


def _fit_both(kind, X, y, params, sample_weight=None, method="fit", **fit_kwargs):
    ours = (fb.MLPClassifier if kind == "C" else fb.MLPRegressor)(**params)
    ref = (sk.MLPClassifier if kind == "C" else sk.MLPRegressor)(**params)
    if sample_weight is not None:
        fit_kwargs["sample_weight"] = sample_weight
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        getattr(ours, method)(X, y, **fit_kwargs)
        getattr(ref, method)(X, y, **fit_kwargs)
    return ours, ref


def _partial_fit_both_on_digits(max_iter=5):
    """Both classifiers after one ``partial_fit`` on the digits (all classes given)."""
    return _fit_both("C", X_DIGITS, Y_DIGITS, dict(SMALL, max_iter=max_iter),
                     method="partial_fit", classes=np.unique(Y_DIGITS))


def _refit_both(ours, ref, **new_params):
    """``set_params(**new_params)`` then ``fit`` on the digits, for both estimators."""
    for est in (ours, ref):
        est.set_params(**new_params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X_DIGITS, Y_DIGITS)


@pytest.mark.parametrize(
    "kind, data, params, weighted", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_same_model_as_sklearn(kind, data, params, weighted):
    X, y = DATA[data]
    sample_weight = SAMPLE_WEIGHT[: len(y)] if weighted else None
    ours, ref = _fit_both(kind, X, y, params, sample_weight)
    assert_same_model(ours, ref, X)


@pytest.mark.slow
def test_digits_default_parameters():
    """The issue's headline case: default hyper-parameters on the whole digits set."""
    X, y = load_digits(return_X_y=True)
    ours, ref = _fit_both("C", X / 16.0, y, dict(random_state=0))
    assert_same_model(ours, ref, X / 16.0)


def test_digits_default_unscaled_pixels():
    """Unscaled 0..16 pixels: larger activations, early convergence; still the same model."""
    X, y = load_digits(return_X_y=True)
    ours, ref = _fit_both("C", X[:600], y[:600], dict(random_state=3, max_iter=50))
    assert_same_model(ours, ref, X[:600])


def test_random_state_instance_consumed_like_sklearn():
    """A RandomState instance is drawn from in scikit-learn's order (init, split, shuffles):
    after the fit both generators are in the same state."""
    params = dict(hidden_layer_sizes=(8,), early_stopping=True, max_iter=5)
    rs_ours, rs_ref = np.random.RandomState(7), np.random.RandomState(7)
    ref = sk.MLPClassifier(**params, random_state=rs_ref)
    ours = fb.MLPClassifier(**params, random_state=rs_ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X_DIGITS, Y_DIGITS)
        ref.fit(X_DIGITS, Y_DIGITS)
    assert rs_ours.randint(1 << 30) == rs_ref.randint(1 << 30)
    assert_same_model(ours, ref, X_DIGITS)


@pytest.mark.parametrize("kind, data", [("C", "digits"), ("R", "reg3")])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_same_as_sklearn(kind, data, solver):
    """Optimizer state (velocities, Adam moments and step) and the learning rate carry over
    between partial_fit calls as in scikit-learn."""
    X, y = DATA[data]
    params = dict(SMALL, solver=solver, learning_rate="invscaling", power_t=0.25,
                  learning_rate_init=0.01)
    ours = (fb.MLPClassifier if kind == "C" else fb.MLPRegressor)(**params)
    ref = (sk.MLPClassifier if kind == "C" else sk.MLPRegressor)(**params)
    extra = {"classes": np.unique(y)} if kind == "C" else {}
    for chunk in np.array_split(np.arange(len(y)), 4):
        ours.partial_fit(X[chunk], y[chunk], **extra)
        ref.partial_fit(X[chunk], y[chunk], **extra)
    for _ in range(3):
        ours.partial_fit(X, y)
        ref.partial_fit(X, y)
    assert_same_model(ours, ref, X)


def test_partial_fit_after_pickle_same_as_sklearn():
    import pickle

    ours, ref = _partial_fit_both_on_digits()
    ours, ref = pickle.loads(pickle.dumps(ours)), pickle.loads(pickle.dumps(ref))
    for est in (ours, ref):
        est.partial_fit(X_DIGITS, Y_DIGITS)
    assert_same_model(ours, ref, X_DIGITS)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_warm_start_same_as_sklearn(solver):
    params = dict(SMALL, solver=solver, warm_start=True, max_iter=10)
    ours, ref = _fit_both("C", X_DIGITS, Y_DIGITS, params)
    _refit_both(ours, ref, max_iter=15, learning_rate_init=0.002)
    assert_same_model(ours, ref, X_DIGITS)


def test_fit_after_partial_fit_restarts_optimizer_like_sklearn():
    ours, ref = _partial_fit_both_on_digits()
    _refit_both(ours, ref, warm_start=True)
    assert_same_model(ours, ref, X_DIGITS)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_float32_close_to_sklearn(solver):
    """float32 input: same dtypes as scikit-learn (float32 weights for sgd/adam; lbfgs works
    in SciPy's float64, so scikit-learn's lbfgs ends with float64 weights) and close numbers."""
    X = X_DIGITS.astype(np.float32)
    params = dict(SMALL, solver=solver, max_iter=15)
    ours, ref = _fit_both("C", X, Y_DIGITS, params)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * np.abs(b).max())
    assert ours.predict_proba(X).dtype == ref.predict_proba(X).dtype
    assert ours.predict_proba(X_DIGITS).dtype == ref.predict_proba(X_DIGITS).dtype
    assert np.mean(ours.predict(X) == ref.predict(X)) > 0.99
    assert ours.n_iter_ == ref.n_iter_


def test_sparse_input_same_as_dense():
    import scipy.sparse as sp

    params = dict(SMALL, max_iter=10)
    ours, ref = _fit_both("C", sp.csr_matrix(X_DIGITS), Y_DIGITS, params)
    assert_same_model(ours, ref, X_DIGITS)
    np.testing.assert_array_equal(ours.predict(sp.csc_matrix(X_DIGITS)),
                                  ref.predict(X_DIGITS))


def test_lbfgs_objective_matches_sklearn():
    """_loss_grad_lbfgs (scikit-learn's private objective, here computed by the engine)
    gives scikit-learn's loss and packed gradient at the same point."""
    from sklearn.preprocessing import LabelBinarizer

    params = dict(SMALL, solver="lbfgs", max_iter=3, alpha=0.1)
    for kind, X, y in (("C", X_DIGITS, Y_DIGITS), ("R", X_REG, Y_REG)):
        ours, ref = _fit_both(kind, X, y, params)
        Y = LabelBinarizer().fit_transform(y) if kind == "C" else y
        theta = np.hstack([p.ravel() for p in ref.coefs_ + ref.intercepts_])
        theta = theta + 0.01 * np.random.RandomState(0).standard_normal(theta.shape)
        layer_units = [X.shape[1], 16, Y.shape[1]]
        act = [X] + [np.empty((len(X), n)) for n in layer_units[1:]]
        deltas = [np.empty_like(a) for a in act[1:]]
        cg = [np.empty((a, b)) for a, b in zip(layer_units[:-1], layer_units[1:])]
        ig = [np.empty(b) for b in layer_units[1:]]
        # scikit-learn's _loss_grad_lbfgs needs the packing metadata its lbfgs fit stored
        loss_ref, grad_ref = ref._loss_grad_lbfgs(theta.copy(), X, Y, SAMPLE_WEIGHT[:len(X)],
                                                  act, deltas, cg, ig)
        loss, grad = ours._loss_grad_lbfgs(theta.copy(), X, Y, SAMPLE_WEIGHT[:len(X)])
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-10, atol=1e-12)
