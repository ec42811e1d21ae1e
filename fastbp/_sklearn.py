"""Drop-in replacements for scikit-learn's ``MLPClassifier`` and ``MLPRegressor``.

``from fastbp import MLPClassifier`` in place of
``from sklearn.neural_network import MLPClassifier`` gives the same model: the same
constructor parameters and defaults, fitted attributes, methods and, for the same
``random_state``, the same numbers (float64 weights agree to rounding), trained by fastbp's
compiled engine instead of NumPy.

Design: the estimators *subclass scikit-learn's own classes* and replace only the numeric work.
Parameter declaration and validation (``_parameter_constraints``, ``_fit_context``), input
validation and label binarisation (``_validate_input``), Glorot initialisation
(``_initialize``, which draws from the random state in scikit-learn's order), the stopping
rule and best-weights bookkeeping (``_update_no_improvement_count``), scoring, ``predict*``,
``partial_fit`` and the estimator tags are inherited unchanged, so they cannot drift from the
installed scikit-learn. What is replaced:

* ``_fit``: same steps as scikit-learn's, but it allocates no NumPy work buffers and hands
  the weights to an :class:`fastbp._engine.Engine`, whose flat parameter vector then *is* the
  storage of ``coefs_`` and ``intercepts_`` (they are views into it);
* the stochastic solvers: the per-epoch driver stays in Python (shuffle permutation drawn by
  scikit-learn's own ``shuffle``, learning-rate schedule, early stopping, verbose output),
  and one ``Engine.train_epoch`` call runs all mini-batches of an epoch in compiled code;
* ``lbfgs``: SciPy's L-BFGS-B, as in scikit-learn, driven by ``Engine.loss_and_gradient``;
* ``_forward_pass_fast`` (behind ``predict``, ``predict_proba`` and the validation score of
  early stopping): ``Engine.predict``.

Subclassing (rather than re-implementing ``BaseEstimator`` plumbing) also keeps
``isinstance(est, sklearn.neural_network.MLPClassifier)`` true, so code that dispatches on the
scikit-learn type keeps working. The price is reliance on a few private methods of
scikit-learn; ``tests/test_sklearn_internals.py`` pins their names and signatures and the
equivalence tests compare numbers with the installed scikit-learn, so a change upstream fails
loudly instead of silently changing results.

Docstrings of the estimators are scikit-learn's (BSD-3-Clause, the scikit-learn developers),
with the summary and example adapted.
"""
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp

try:
    from sklearn.base import is_classifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
    from sklearn.utils import check_random_state, shuffle
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import _check_sample_weight, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "fastbp.MLPClassifier and fastbp.MLPRegressor need scikit-learn; "
        "install it with `pip install 'fastbp[sklearn]'`."
    ) from exc

from ._engine import Engine, TrainingDiverged

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")

# scikit-learn's output activation (``out_activation_``) -> the engine's loss for it.
# Every pair is canonical: the output error term is ``yhat - y``, as in scikit-learn.
_LOSS_OF_OUTPUT = {
    "softmax": "cross_entropy",
    "logistic": "binary_cross_entropy",
    "identity": "mse",
    "exp": "poisson",
}

_NON_FINITE_MESSAGE = (
    "Solver produced non-finite parameter weights. The input data may"
    " contain large values and need to be preprocessed."
)


class _LearningRateSchedule:
    """The per-epoch part of scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer``.

    The per-step arithmetic (velocities, Adam moments and step count) lives in the engine;
    this object keeps only what scikit-learn changes between epochs: the learning rate
    (``invscaling`` at ``iteration_ends``, ``adaptive`` at ``trigger_stopping``) and the
    stopping messages. It is stored as ``_optimizer``, the attribute scikit-learn's
    ``partial_fit`` logic tests for, so that successive ``partial_fit`` calls keep it.

    Parameters
    ----------
    solver : {"sgd", "adam"}
    learning_rate_init : float
    lr_schedule : {"constant", "invscaling", "adaptive"}
        Ignored for ``"adam"``, as in scikit-learn.
    power_t : float
    """

    def __init__(self, solver, learning_rate_init, lr_schedule, power_t):
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule if solver == "sgd" else "constant"
        self.power_t = power_t

    def iteration_ends(self, time_step):
        """Update the learning rate after an epoch; ``time_step`` is ``t_``."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = (
                float(self.learning_rate_init) / (time_step + 1) ** self.power_t
            )

    def trigger_stopping(self, msg, verbose):
        """Return True to stop; ``adaptive`` SGD divides the rate by 5 instead while it can."""
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


def _as_engine_array(X, dtype):
    """``X`` as a C-contiguous dense array of ``dtype`` (sparse input is densified)."""
    if sp.issparse(X):
        # The engine works on dense rows; densifying gives the same products as
        # scikit-learn's sparse ``safe_sparse_dot`` up to rounding.
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=dtype)


def _is_view_at(a, theta, offset, shape):
    """Is ``a`` the C-ordered view ``theta[offset:offset + size].reshape(shape)``?"""
    return (
        isinstance(a, np.ndarray)
        and a.base is theta
        and a.shape == shape
        and a.dtype == theta.dtype
        and a.flags.c_contiguous
        and a.ctypes.data == theta.ctypes.data + offset * theta.itemsize
    )


class _EngineMLPMixin:
    """Numeric core shared by :class:`MLPClassifier` and :class:`MLPRegressor`.

    Must come before the scikit-learn class in the bases so that its methods win.
    """

    # ------------------------------------------------------------------ engine binding
    def _engine_in_sync(self, engine):
        """True when ``coefs_``/``intercepts_`` are views of exactly the engine's weights.

        Checked by memory (base array, address, shape), not by object identity, so it holds
        whatever view objects the engine hands out; a user who assigns new arrays to
        ``coefs_`` breaks it, and the next prediction or warm start then copies them.
        """
        coefs = getattr(self, "coefs_", None)
        intercepts = getattr(self, "intercepts_", None)
        if engine is None or coefs is None or intercepts is None:
            return False
        theta = engine.theta
        sizes = engine.layer_sizes
        if len(coefs) != len(sizes) - 1 or len(intercepts) != len(sizes) - 1:
            return False
        offset = 0
        for coef, intercept, n_in, n_out in zip(coefs, intercepts, sizes[:-1], sizes[1:]):
            if not (
                _is_view_at(coef, theta, offset, (n_in, n_out))
                and _is_view_at(intercept, theta, offset + n_in * n_out, (n_out,))
            ):
                return False
            offset += n_in * n_out + n_out
        return True

    def _new_engine(self, layer_units, dtype):
        """An engine for this model's architecture holding a copy of the current weights."""
        engine = Engine(
            list(layer_units),
            self.activation,
            self.out_activation_,
            _LOSS_OF_OUTPUT[self.out_activation_],
            dtype,
            clip_probabilities=True,  # scikit-learn's log-loss value clips to [eps, 1 - eps]
        )
        weights, biases = engine.weights, engine.biases
        for i, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_)):
            if coef.shape != weights[i].shape or intercept.shape != biases[i].shape:
                raise ValueError(
                    "coefs_[%d] has shape %s and intercepts_[%d] shape %s, but the network "
                    "%s needs %s and %s; with warm_start=True or partial_fit, "
                    "hidden_layer_sizes and the number of outputs must not change."
                    % (i, coef.shape, i, intercept.shape, list(layer_units),
                       weights[i].shape, biases[i].shape)
                )
        engine.set_params(self.coefs_, self.intercepts_)
        return engine

    def _bind_engine(self, layer_units, dtype):
        """Return ``(engine, is_new)``: the training engine, with ``coefs_`` viewing its weights.

        An existing engine is reused (keeping its optimizer state, which ``partial_fit``
        needs) when it has the right architecture and dtype and still owns ``coefs_``;
        otherwise (first fit, unpickled model, weights replaced by the user) a new engine is
        built from the current ``coefs_``/``intercepts_``.
        """
        engine = getattr(self, "_engine", None)
        if (
            self._engine_in_sync(engine)
            and list(engine.layer_sizes) == list(layer_units)
            and np.dtype(engine.dtype) == np.dtype(dtype)
            and getattr(self, "_engine_key", None) == (self.activation, self.out_activation_)
        ):
            return engine, False
        engine = self._new_engine(layer_units, dtype)
        self._engine = engine
        # The engine bakes in the activations: a warm start after set_params(activation=...)
        # must not reuse it.
        self._engine_key = (self.activation, self.out_activation_)
        self.coefs_ = list(engine.weights)
        self.intercepts_ = list(engine.biases)
        return engine, True

    def __getstate__(self):
        state = dict(super().__getstate__())
        engine = state.get("_engine")
        engine_pickles_itself = getattr(type(engine), "__getstate__", None) is not getattr(
            object, "__getstate__", None  # object has no __getstate__ before Python 3.11
        )
        if engine is not None and not engine_pickles_itself:
            # An engine that pickles all its work buffers would multiply the size of a
            # pickled model; then the weights travel as coefs_/intercepts_ only and a new
            # engine is built from them when needed. The optimizer state (velocities, Adam
            # moments) is lost with it: partial_fit after unpickling restarts it. An engine
            # that defines __getstate__ (pickling parameters and optimizer state only) is
            # kept, as scikit-learn keeps its _optimizer.
            state.pop("_engine")
            state.pop("_engine_key", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        engine = self.__dict__.get("_engine")
        if engine is not None and hasattr(self, "coefs_"):
            # Pickling stored coefs_ apart from the engine's theta: make them views again.
            engine.set_params(self.coefs_, self.intercepts_)
            self.coefs_ = list(engine.weights)
            self.intercepts_ = list(engine.biases)

    # ----------------------------------------------------------------------- fitting
    def _fit(self, X, y, sample_weight=None, incremental=False):
        # Same steps, messages and random-state use as scikit-learn's ``_fit``.
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)

        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(
                "hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes
            )
        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental
        )

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)

        if y.ndim == 1:
            y = y.reshape((-1, 1))

        self.n_outputs_ = y.shape[1]

        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]

        self._random_state = check_random_state(self.random_state)

        if first_pass:
            self._initialize(y, layer_units, X.dtype)

        if self.solver in _STOCHASTIC_SOLVERS:
            # A new model takes X's precision; a warm start or partial_fit keeps the
            # model's (scikit-learn updates its existing weight arrays in place).
            dtype = X.dtype if first_pass else self.coefs_[0].dtype
        else:
            # scikit-learn's lbfgs keeps its weights in SciPy's float64 vector (``_unpack``
            # rebinds coefs_ to slices of it), so it trains and ends in float64 even for
            # float32 X; doing the same keeps the numbers and the coefs_ dtype identical.
            dtype = np.float64
        engine, is_new_engine = self._bind_engine(layer_units, dtype)

        X = _as_engine_array(X, dtype)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic_engine(
                engine, X, y, sample_weight, incremental, is_new_engine
            )
        else:
            self._fit_lbfgs_engine(engine, X, y, sample_weight)

        if not np.isfinite(engine.theta).all():
            raise ValueError(_NON_FINITE_MESSAGE)
        return self

    def _data_loss_scale(self):
        # scikit-learn's squared_error is the *mean* over outputs of half the squared error,
        # while its gradient (delta = yhat - y) is that of the sum; the engine's "mse" is
        # the sum. Other losses are sums over outputs in both.
        return 1.0 / self.n_outputs_ if self.out_activation_ == "identity" else 1.0

    @staticmethod
    def _packed_positions(engine):
        """Engine positions of scikit-learn's packed parameter vector.

        scikit-learn packs all coefs, then all intercepts; the engine interleaves W_k, b_k
        layer by layer. Element j of the packed vector lives at ``theta[positions[j]]``.
        """
        coef_parts, bias_parts, pos = [], [], 0
        for n_in, n_out in zip(engine.layer_sizes[:-1], engine.layer_sizes[1:]):
            coef_parts.append(np.arange(pos, pos + n_in * n_out))
            pos += n_in * n_out
            bias_parts.append(np.arange(pos, pos + n_out))
            pos += n_out
        return np.concatenate(coef_parts + bias_parts)

    def _engine_loss_grad(self, packed, engine, positions, X, Y, sample_weight):
        """Loss and packed gradient at ``packed`` (scikit-learn's objective for lbfgs)."""
        engine.theta[positions] = packed
        data_loss, penalty, grad = engine.loss_and_gradient(
            X, Y, sample_weight=sample_weight, l2=float(self.alpha)
        )
        return data_loss * self._data_loss_scale() + penalty, grad[positions]

    def _loss_grad_lbfgs(
        self,
        packed_coef_inter,
        X,
        y,
        sample_weight,
        activations=None,
        deltas=None,
        coef_grads=None,
        intercept_grads=None,
    ):
        """scikit-learn's lbfgs objective, computed by the engine.

        Same signature and effect as scikit-learn's method (the weights are set to
        ``packed_coef_inter``); the work-buffer arguments are accepted and ignored.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_parameters,), in scikit-learn's packing order
        """
        layer_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        engine, _ = self._bind_engine(layer_units, np.float64)
        dtype = engine.dtype
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        return self._engine_loss_grad(
            packed_coef_inter,
            engine,
            self._packed_positions(engine),
            _as_engine_array(X, dtype),
            np.ascontiguousarray(np.reshape(y, (len(y), -1)), dtype=dtype),
            sample_weight,
        )

    def _fit_lbfgs_engine(self, engine, X, y, sample_weight):
        Y = np.ascontiguousarray(y, dtype=engine.dtype)
        # Keeping scikit-learn's packing order for SciPy keeps L-BFGS-B's own dot products,
        # and so its iterates, the same as in scikit-learn's run.
        positions = self._packed_positions(engine)
        packed0 = engine.theta[positions].astype(np.float64)
        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        opt_res = scipy.optimize.minimize(
            self._engine_loss_grad,
            packed0,
            method="L-BFGS-B",
            jac=True,
            options={
                "maxfun": self.max_fun,
                "maxiter": self.max_iter,
                "gtol": self.tol,
                **_get_additional_lbfgs_options_dict("iprint", iprint),
            },
            args=(engine, positions, X, Y, sample_weight),
        )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        engine.theta[positions] = opt_res.x

    def _fit_stochastic_engine(
        self, engine, X, y, sample_weight, incremental, is_new_engine
    ):
        if not incremental or not hasattr(self, "_optimizer") or is_new_engine:
            if not incremental or not hasattr(self, "_optimizer"):
                self._optimizer = _LearningRateSchedule(
                    self.solver, self.learning_rate_init, self.learning_rate, self.power_t
                )
            if self.solver == "adam":
                engine.set_optimizer(
                    "adam", beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon
                )
            elif self.momentum == 0:
                # scikit-learn computes 0 * v - lr * g: the same bits as plain SGD.
                engine.set_optimizer("sgd")
            else:
                engine.set_optimizer(
                    "nesterov" if self.nesterovs_momentum else "momentum",
                    momentum=self.momentum,
                )

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X,
                    y,
                    random_state=self._random_state,
                    test_size=self.validation_fraction,
                    stratify=stratify,
                )
                sample_weight_train = sample_weight_val = None
            else:
                (
                    X_train,
                    X_val,
                    y_train,
                    y_val,
                    sample_weight_train,
                    sample_weight_val,
                ) = train_test_split(
                    X,
                    y,
                    sample_weight,
                    random_state=self._random_state,
                    test_size=self.validation_fraction,
                    stratify=stratify,
                )
                sample_weight_train = np.ascontiguousarray(sample_weight_train)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_train = np.ascontiguousarray(X_train)
            X_val = np.ascontiguousarray(X_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        Y_train = np.ascontiguousarray(y_train, dtype=engine.dtype)
        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        scale = self._data_loss_scale()
        alpha = float(self.alpha)
        diverged = False
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if self.shuffle:
                    # scikit-learn's own shuffle of the previous order: same random draws.
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)

                if diverged:
                    data_loss_sum = penalty_sum = np.nan
                else:
                    try:
                        # One compiled call runs every mini-batch of the epoch.
                        data_loss_sum, penalty_sum = engine.train_epoch(
                            X_train,
                            Y_train,
                            sample_idx,
                            batch_size,
                            self._optimizer.learning_rate,
                            sample_weight=sample_weight_train,
                            l2=alpha,
                        )
                    except TrainingDiverged:
                        # scikit-learn carries on with non-finite weights: every later
                        # loss and validation score is NaN, the stopping rule never fires
                        # (NaN compares False), and the fit ends with the non-finite-weights
                        # error, or with the best weights under early stopping. The engine
                        # rolled back to the epoch start instead; NaN weights reproduce
                        # scikit-learn's course without running the remaining epochs.
                        diverged = True
                        engine.theta[:] = np.nan
                        data_loss_sum = penalty_sum = np.nan
                self.n_iter_ += 1
                self.loss_ = (data_loss_sum * scale + penalty_sum) / n_samples

                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                # scikit-learn's bookkeeping: validation score through our engine-backed
                # _predict, best weights copied from the coefs_ views.
                self._update_no_improvement_count(
                    early_stopping, X_val, y_val, sample_weight_val
                )

                self._optimizer.iteration_ends(self.t_)

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            "tol=%f for %d consecutive epochs."
                            % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f"
                            " for %d consecutive epochs."
                            % (self.tol, self.n_iter_no_change)
                        )

                    is_stopping = self._optimizer.trigger_stopping(msg, self.verbose)
                    if is_stopping:
                        break
                    else:
                        self._no_improvement_count = 0

                if incremental:
                    break

                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet."
                        % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            # restore best weights (into the engine, so that coefs_ stay its views)
            engine.set_params(self._best_coefs, self._best_intercepts)

    # -------------------------------------------------------------------- prediction
    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer activations for ``X``, computed by the engine.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        check_input : bool, default=True
            Validate ``X`` (feature count and names) first.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_outputs)
            Same dtype as scikit-learn's result (the promotion of ``X``'s and the weights'
            dtypes).
        """
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        weights_dtype = self.coefs_[0].dtype
        out_dtype = np.result_type(X.dtype, weights_dtype)
        if out_dtype not in (np.float32, np.float64):
            out_dtype = np.dtype(np.float64)

        engine = getattr(self, "_engine", None)
        if self._engine_in_sync(engine) and np.dtype(engine.dtype) == out_dtype:
            # The engine serialises calls through its work buffers, so concurrent predict()
            # calls on one model (as in a server) stay correct, as with scikit-learn.
            return engine.predict(_as_engine_array(X, engine.dtype))
        # Weights not owned by an engine of this dtype (unpickled model, weights set by
        # hand, float64 X on a float32 model): a throw-away engine, so that predicting
        # never changes the estimator's state.
        layer_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        engine = self._new_engine(layer_units, out_dtype)
        return engine.predict(_as_engine_array(X, engine.dtype))


def _adapt_doc(doc, name):
    """scikit-learn's docstring of ``name`` with fastbp's summary and example."""
    head, _, rest = doc.partition("\n\n")
    summary = (
        "%s, trained by fastbp's compiled engine.\n\n"
        "    A drop-in replacement for ``sklearn.neural_network.%s``, which it subclasses:\n"
        "    the same parameters, defaults, fitted attributes and methods and, for the same\n"
        "    ``random_state``, the same numbers (float64 weights agree to rounding). Only the\n"
        "    arithmetic of training and prediction runs in fastbp's Numba kernels.\n"
        "    Differences: sparse input is densified for the engine; the engine's threads\n"
        "    follow ``NUMBA_NUM_THREADS``.\n" % (head.strip().rstrip("."), name)
    )
    rest = rest.replace("    .. versionadded:: 0.18\n\n", "", 1)
    body, _, _ = rest.partition("    Examples\n    --------")
    example = (
        "    Examples\n"
        "    --------\n"
        "    >>> from fastbp import %s\n"
        "    >>> from sklearn.datasets import load_digits\n"
        "    >>> X, y = load_digits(return_X_y=True)\n"
        "    >>> est = %s(random_state=1, max_iter=300).fit(X / 16.0, y)  # doctest: +SKIP\n"
        % (name, name)
    )
    return summary + "\n" + body + example


class MLPClassifier(_EngineMLPMixin, _SkMLPClassifier):
    __doc__ = _adapt_doc(_SkMLPClassifier.__doc__, "MLPClassifier")


class MLPRegressor(_EngineMLPMixin, _SkMLPRegressor):
    __doc__ = _adapt_doc(_SkMLPRegressor.__doc__, "MLPRegressor")
