"""fastbp's MLPClassifier/MLPRegressor behave as scikit-learn's: API, messages, warnings,
state handling, and that the work really runs in fastbp's engine."""
import inspect
import io
import pickle
import subprocess
import sys
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra (fastbp[sklearn]); "
                                      "the test extra installs it")

import scipy.sparse as sp  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import fastbp._sklearn as fb  # noqa: E402
from fastbp._engine import Engine  # noqa: E402

from .conftest import errors_in_threads  # noqa: E402

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = X_DIGITS[:300] / 16.0
Y_DIGITS = Y_DIGITS[:300]
X_REG, Y_REG = make_regression(n_samples=200, n_features=8, random_state=0)
Y_REG = Y_REG / Y_REG.std()

PAIRS = [(fb.MLPClassifier, sk.MLPClassifier), (fb.MLPRegressor, sk.MLPRegressor)]
FITTED_ATTRIBUTES = ["coefs_", "intercepts_", "loss_", "best_loss_", "loss_curve_",
                     "validation_scores_", "best_validation_score_", "t_", "n_iter_",
                     "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"]


def _quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


# ------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_same_constructor_and_defaults(ours, theirs):
    assert inspect.signature(ours.__init__) == inspect.signature(theirs.__init__)
    assert ours().get_params() == theirs().get_params()
    assert ours._parameter_constraints == theirs._parameter_constraints


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_is_a_sklearn_estimator(ours, theirs):
    est = ours()
    assert isinstance(est, theirs)
    assert clone(est).get_params() == est.get_params()
    assert repr(ours(solver="sgd")) == repr(theirs(solver="sgd"))
    assert "fastbp" in ours.__doc__ and "Parameters" in ours.__doc__


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(solver="newton"), "solver"),
        (dict(activation="gelu"), "activation"),
        (dict(learning_rate="cosine"), "learning_rate"),
        (dict(alpha=-1.0), "alpha"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate_init=0.0), "learning_rate_init"),
        (dict(max_iter=0), "max_iter"),
        (dict(momentum=1.5), "momentum"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(beta_1=1.0), "beta_1"),
        (dict(beta_2=-0.1), "beta_2"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(n_iter_no_change=0), "n_iter_no_change"),
        (dict(max_fun=0), "max_fun"),
        (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
    ],
)
def test_bad_parameters_same_error(params, message):
    errors = []
    for Estimator in (fb.MLPClassifier, sk.MLPClassifier):
        with pytest.raises(ValueError, match=message) as info:
            Estimator(**params).fit(X_DIGITS, Y_DIGITS)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_regressor_loss_parameter():
    with pytest.raises(ValueError, match="loss"):
        fb.MLPRegressor(loss="huber").fit(X_REG, Y_REG)
    assert fb.MLPRegressor(loss="poisson").loss == "poisson"


# ------------------------------------------------------------------- fitted attributes
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_same_fitted_attribute_names(solver, early_stopping):
    params = dict(solver=solver, early_stopping=early_stopping, max_iter=5, random_state=0,
                  hidden_layer_sizes=(8,))
    ours = _quiet_fit(fb.MLPClassifier(**params), X_DIGITS, Y_DIGITS)
    ref = _quiet_fit(sk.MLPClassifier(**params), X_DIGITS, Y_DIGITS)

    def public(est):
        return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))

    assert public(ours) == public(ref)
    for name in FITTED_ATTRIBUTES + ["classes_"]:
        assert hasattr(ours, name) == hasattr(ref, name), name
        if hasattr(ref, name) and name not in ("coefs_", "intercepts_"):
            assert type(getattr(ours, name)) is type(getattr(ref, name)) or isinstance(
                getattr(ours, name), float
            ), name


def test_feature_names_pandas():
    pd = pytest.importorskip("pandas", reason="pandas is optional; the test extra installs it")
    df = pd.DataFrame(X_DIGITS, columns=["px%d" % i for i in range(64)])
    ours = _quiet_fit(fb.MLPClassifier(max_iter=3, random_state=0), df, Y_DIGITS)
    ref = _quiet_fit(sk.MLPClassifier(max_iter=3, random_state=0), df, Y_DIGITS)
    np.testing.assert_array_equal(ours.feature_names_in_, ref.feature_names_in_)
    np.testing.assert_array_equal(ours.predict(df), ref.predict(df))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        ours.predict(X_DIGITS)
    with pytest.raises(ValueError, match="feature names"):
        ours.predict(df.rename(columns={"px0": "other"}))
    # early stopping scores a validation split without losing the names (sklearn gh-24846)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        fb.MLPClassifier(early_stopping=True, max_iter=3).fit(df, Y_DIGITS)


def test_string_and_pandas_targets():
    pd = pytest.importorskip("pandas", reason="pandas is optional; the test extra installs it")
    labels = np.array(["cat", "dog", "eel"])[Y_DIGITS % 3]
    ours = _quiet_fit(fb.MLPClassifier(max_iter=5, random_state=0), X_DIGITS,
                      pd.Series(labels))
    ref = _quiet_fit(sk.MLPClassifier(max_iter=5, random_state=0), X_DIGITS,
                     pd.Series(labels))
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_array_equal(ours.predict(X_DIGITS), ref.predict(X_DIGITS))


# ------------------------------------------------------------- messages and warnings
def _stdout_of(fn):
    buf = io.StringIO()
    with redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fn()
    return buf.getvalue()


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=2,
             max_iter=30),
        dict(solver="adam", early_stopping=True, n_iter_no_change=2, max_iter=30),
        dict(solver="adam", tol=0.05, n_iter_no_change=2, max_iter=30),
    ],
)
def test_verbose_output_identical(params):
    params = dict(params, verbose=True, random_state=0, hidden_layer_sizes=(8,))
    out_ours = _stdout_of(lambda: fb.MLPClassifier(**params).fit(X_DIGITS, Y_DIGITS))
    out_ref = _stdout_of(lambda: sk.MLPClassifier(**params).fit(X_DIGITS, Y_DIGITS))
    assert out_ours == out_ref
    assert "Iteration 1, loss = " in out_ours


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_convergence_warning(solver):
    with pytest.warns(ConvergenceWarning):
        fb.MLPClassifier(solver=solver, max_iter=2, random_state=0).fit(X_DIGITS, Y_DIGITS)


def test_batch_size_clipped_warning():
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        _quiet_fit(fb.MLPClassifier(batch_size=1000, max_iter=2), X_DIGITS, Y_DIGITS)


def test_diverging_fit_raises_like_sklearn():
    """A diverging run ends with scikit-learn's non-finite weights error."""
    params = dict(solver="sgd", learning_rate_init=10.0, max_iter=8, random_state=0)
    messages = []
    for Estimator in (fb.MLPRegressor, sk.MLPRegressor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="non-finite parameter weights") as info:
                Estimator(**params).fit(X_REG * 1e3, Y_REG)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("y", [Y_REG > 0, (Y_REG * 3).astype(int) % 3],
                         ids=["binary", "multiclass"])
def test_saturated_log_loss_value_like_sklearn(y):
    params = dict(solver="sgd", learning_rate_init=10.0, max_iter=3, random_state=0)
    ours = _quiet_fit(fb.MLPClassifier(**params), X_REG * 1e3, y)
    ref = _quiet_fit(sk.MLPClassifier(**params), X_REG * 1e3, y)
    for a, b in zip(ours.coefs_, ref.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-6)


def test_diverging_fit_with_early_stopping_keeps_best_weights():
    params = dict(solver="sgd", learning_rate_init=1.0, activation="identity", max_iter=20,
                  early_stopping=True, random_state=0, hidden_layer_sizes=(100,))
    X, y = load_digits(return_X_y=True)
    ours, ref = fb.MLPRegressor(**params), sk.MLPRegressor(**params)
    for est in (ours, ref):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[:200], y[:200])
    assert ours.n_iter_ == ref.n_iter_ == 20
    assert len(ours.loss_curve_) == len(ref.loss_curve_)
    assert np.isnan(ours.validation_scores_[-1]) and np.isnan(ref.validation_scores_[-1])
    assert isinstance(ours.validation_scores_[-1], float)
    np.testing.assert_allclose(ours.best_validation_score_, ref.best_validation_score_,
                               rtol=1e-6)
    for a, b in zip(ours.coefs_, ref.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())


def test_partial_fit_errors_like_sklearn():
    for Estimator in (fb.MLPClassifier, sk.MLPClassifier):
        assert not hasattr(Estimator(solver="lbfgs"), "partial_fit")
        est = Estimator(early_stopping=True)
        with pytest.raises(ValueError, match="early_stopping"):
            est.partial_fit(X_DIGITS, Y_DIGITS, classes=np.unique(Y_DIGITS))


def test_partial_fit_counts():
    est = fb.MLPClassifier(random_state=0)
    for _ in range(3):
        est.partial_fit(X_DIGITS, Y_DIGITS, classes=np.unique(Y_DIGITS))
    assert est.n_iter_ == 1  # scikit-learn resets n_iter_ on every call
    assert est.t_ == 3 * len(X_DIGITS)
    assert len(est.loss_curve_) == 3


def test_warm_start_rejects_new_architecture():
    est = _quiet_fit(fb.MLPClassifier(hidden_layer_sizes=(8,), warm_start=True, max_iter=2),
                     X_DIGITS, Y_DIGITS)
    est.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.fit(X_DIGITS, Y_DIGITS)


def test_warm_start_after_changing_activation_uses_new_activation():
    params = dict(hidden_layer_sizes=(8,), warm_start=True, max_iter=3, random_state=0)
    ests = [_quiet_fit(E(**params), X_DIGITS, Y_DIGITS)
            for E in (fb.MLPClassifier, sk.MLPClassifier)]
    for est in ests:
        est.set_params(activation="tanh")
        _quiet_fit(est, X_DIGITS, Y_DIGITS)
    np.testing.assert_allclose(ests[0].predict_proba(X_DIGITS),
                               ests[1].predict_proba(X_DIGITS), rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------- state and copies
def test_coefs_are_live_like_sklearn():
    """Editing coefs_ in place, or assigning new arrays, changes predictions as in
    scikit-learn (predict always uses the current coefs_)."""
    ours = _quiet_fit(fb.MLPClassifier(max_iter=3, random_state=0), X_DIGITS, Y_DIGITS)
    ref = _quiet_fit(sk.MLPClassifier(max_iter=3, random_state=0), X_DIGITS, Y_DIGITS)
    for est in (ours, ref):
        est.coefs_[0] *= 0.5
        est.intercepts_[-1] += 0.1
    np.testing.assert_allclose(ours.predict_proba(X_DIGITS), ref.predict_proba(X_DIGITS),
                               rtol=1e-6, atol=1e-12)
    rng = np.random.RandomState(0)
    new = rng.standard_normal(ref.coefs_[1].shape)
    ours.coefs_[1] = new.copy()
    ref.coefs_[1] = new.copy()
    np.testing.assert_allclose(ours.predict_proba(X_DIGITS), ref.predict_proba(X_DIGITS),
                               rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_pickle_round_trip_and_continue(solver):
    est = _quiet_fit(fb.MLPClassifier(solver=solver, max_iter=3, random_state=0),
                     X_DIGITS, Y_DIGITS)
    before = est.predict_proba(X_DIGITS)
    blob = pickle.dumps(est)
    assert len(blob) < 4 * sum(c.nbytes for c in est.coefs_) + 100_000
    loaded = pickle.loads(blob)
    np.testing.assert_array_equal(loaded.predict_proba(X_DIGITS), before)
    loaded.partial_fit(X_DIGITS, Y_DIGITS)
    assert loaded.t_ == est.t_ + len(X_DIGITS)
    assert np.isfinite(loaded.loss_)


def test_predict_does_not_change_state():
    est = _quiet_fit(fb.MLPClassifier(max_iter=2, random_state=0), X_DIGITS, Y_DIGITS)
    before = dict(vars(est))
    est.predict(X_DIGITS.astype(np.float32))
    est.predict_proba(sp.csr_matrix(X_DIGITS))
    assert vars(est).keys() == before.keys()
    assert all(vars(est)[k] is before[k] for k in before)


def test_concurrent_predictions_are_correct():
    est = _quiet_fit(fb.MLPClassifier(hidden_layer_sizes=(64,), max_iter=3, random_state=0),
                     X_DIGITS, Y_DIGITS)
    expected = est.predict_proba(X_DIGITS)
    results = []

    def worker():
        for _ in range(20):
            results.append(est.predict_proba(X_DIGITS))

    assert errors_in_threads(worker, 4) == []
    for r in results:
        np.testing.assert_array_equal(r, expected)


# ------------------------------------------------- the work runs in fastbp's engine
def test_training_and_prediction_never_use_sklearn_numerics(monkeypatch):
    """scikit-learn's NumPy forward/backward passes and solvers are never called."""
    base = sk._multilayer_perceptron.BaseMultilayerPerceptron

    def forbidden(*args, **kwargs):
        raise AssertionError("scikit-learn's NumPy code path was used")

    for name in ("_backprop", "_forward_pass", "_fit_stochastic", "_fit_lbfgs",
                 "_forward_pass_fast", "_unpack", "_compute_loss_grad"):
        monkeypatch.setattr(base, name, forbidden)
    for solver in ("sgd", "adam", "lbfgs"):
        for early_stopping in (False, True):
            est = _quiet_fit(fb.MLPClassifier(solver=solver, early_stopping=early_stopping,
                                              max_iter=3), X_DIGITS, Y_DIGITS)
            est.predict_proba(X_DIGITS)
            est.score(X_DIGITS, Y_DIGITS)
    _quiet_fit(fb.MLPRegressor(max_iter=3), X_REG, Y_REG).predict(X_REG)


def test_one_compiled_call_per_epoch(monkeypatch):
    """No Python per mini-batch: one Engine.train_epoch call per epoch, nothing else."""
    calls = {"train_epoch": 0, "loss_and_gradient": 0}
    original = Engine.train_epoch

    def counting_train_epoch(self, *args, **kwargs):
        calls["train_epoch"] += 1
        return original(self, *args, **kwargs)

    def no_loss_and_gradient(self, *args, **kwargs):
        calls["loss_and_gradient"] += 1
        raise AssertionError("stochastic solvers must not evaluate batches from Python")

    monkeypatch.setattr(Engine, "train_epoch", counting_train_epoch)
    monkeypatch.setattr(Engine, "loss_and_gradient", no_loss_and_gradient)
    est = _quiet_fit(fb.MLPClassifier(batch_size=10, max_iter=7), X_DIGITS, Y_DIGITS)
    assert est.n_iter_ == 7
    assert calls == {"train_epoch": 7, "loss_and_gradient": 0}


# ------------------------------------------------------------------ private pinning
@pytest.mark.parametrize(
    "name, parameters",
    [
        ("_validate_input", ["self", "X", "y", "incremental", "reset"]),
        ("_initialize", ["self", "y", "layer_units", "dtype"]),
        ("_update_no_improvement_count", ["self", "early_stopping", "X", "y",
                                          "sample_weight"]),
        ("_score", ["self", "X", "y", "sample_weight"]),
        ("_predict", ["self", "X", "check_input"]),
        ("_fit", ["self", "X", "y", "sample_weight", "incremental"]),
        ("_forward_pass_fast", ["self", "X", "check_input"]),
        ("_loss_grad_lbfgs", ["self", "packed_coef_inter", "X", "y", "sample_weight",
                              "activations", "deltas", "coef_grads", "intercept_grads"]),
    ],
)
@pytest.mark.parametrize("Ref", [sk.MLPClassifier, sk.MLPRegressor])
def test_sklearn_private_methods_we_rely_on(Ref, name, parameters):
    """The scikit-learn internals fastbp's estimators call or override still exist with the
    signatures they were written against (see fastbp/_sklearn.py)."""
    assert list(inspect.signature(getattr(Ref, name)).parameters) == parameters


def test_sklearn_fit_dispatches_to_fit():
    """scikit-learn's fit and partial_fit reach the numeric work only through ``_fit``,
    which fastbp overrides."""
    for Ref in (sk.MLPClassifier, sk.MLPRegressor):
        for method in ("fit", "partial_fit"):
            source = inspect.getsource(getattr(Ref, method))
            assert "self._fit(" in source, (Ref, method)


# --------------------------------------------------------------- package entry point
def test_package_exposes_estimators():
    import fastbp

    assert fastbp.MLPClassifier is fb.MLPClassifier
    assert fastbp.MLPRegressor is fb.MLPRegressor


@pytest.mark.slow
def test_clear_import_error_without_sklearn():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None\n"
        "import fastbp\n"
        "try:\n"
        "    fastbp.MLPClassifier\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    repo_root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=repo_root).stdout
    assert "ImportError:" in out and "scikit-learn" in out and "fastbp[sklearn]" in out


def test_warm_start_keeps_model_precision_like_sklearn():
    for solver in ("adam", "lbfgs"):
        dtypes = []
        for Estimator in (fb.MLPClassifier, sk.MLPClassifier):
            est = _quiet_fit(Estimator(solver=solver, max_iter=2, warm_start=True,
                                       random_state=0),
                             X_DIGITS.astype(np.float32), Y_DIGITS)
            _quiet_fit(est, X_DIGITS, Y_DIGITS)  # float64 X now
            dtypes.append([c.dtype for c in est.coefs_ + est.intercepts_])
        assert dtypes[0] == dtypes[1], solver
