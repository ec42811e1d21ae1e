"""``fastbp.Network``: the public, thin Python layer over the compiled engine.

It validates and converts input once, at the boundary, supplies defaults, and hands
C-contiguous arrays of the network's dtype to :class:`fastbp._engine.Engine`, which
runs the compiled kernels. There is no arithmetic of the algorithm here.
"""
import numbers
import time

import numpy as np

from ._codes import (CANONICAL_OUTPUT, HIDDEN_ACTIVATIONS, LOSSES, OPTIMIZERS,
                     OUTPUT_ACTIVATIONS)
from ._engine import Engine, NonFiniteInput, TrainingDiverged
from ._init import INITS, initial_parameters
from ._rng import seed_state

__all__ = ["Network", "TrainingDiverged"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(set(choices))}, got {value!r}")
    return value


def _check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_real(value, name, low, high=np.inf, low_inclusive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    ok_low = value >= low if low_inclusive else value > low
    if not (ok_low and value < high and np.isfinite(value)):
        bracket = "[" if low_inclusive else "("
        raise ValueError(f"{name} must be in {bracket}{low}, {high}), got {value}")
    return value


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in _DTYPES:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def _check_activations_and_loss(hidden_activation, output_activation, loss):
    if hidden_activation == "softmax":
        raise ValueError("softmax can only be the output_activation, not hidden_activation")
    _check_choice(hidden_activation, "hidden_activation", HIDDEN_ACTIVATIONS)
    _check_choice(output_activation, "output_activation", OUTPUT_ACTIVATIONS)
    _check_choice(loss, "loss", LOSSES)
    if output_activation == "softmax" and loss != "cross_entropy":
        raise ValueError("output_activation='softmax' requires loss='cross_entropy'")
    canonical = CANONICAL_OUTPUT.get(loss)
    if canonical and output_activation not in canonical:
        raise ValueError(f"loss={loss!r} requires output_activation in {list(canonical)}, "
                         f"got {output_activation!r}")


def _check_random_state(random_state):
    """``numpy.random.default_rng(random_state)``, with errors that name the argument."""
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"random_state must be None, a non-negative int or a "
                        f"numpy.random.Generator, got {random_state!r}") from None


def _check_numeric(arr, name):
    """Raise ``TypeError`` unless ``arr`` holds real numbers (booleans included)."""
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")


def _as_matrix(data, name, dtype, n_columns, n_rows=None, check_finite=True):
    """``data`` as a finite, non-empty, C-contiguous 2-D array of ``dtype`` (with
    ``check_finite=False`` the caller checks finiteness)."""
    try:
        arr = np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    _check_numeric(arr, name)
    if arr.ndim == 1 and name == "Y" and n_columns == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        what = " (one row per sample; one-hot rows for classification)" if name == "Y" else ""
        raise ValueError(f"{name} must be 2-dimensional (n_samples, {n_columns}){what}, "
                         f"got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it must have at least one row")
    if arr.shape[1] != n_columns:
        raise ValueError(f"{name} has {arr.shape[1]} columns, but the network expects "
                         f"{n_columns} (shape (n_samples, {n_columns}))")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_rows}: they must match")
    try:
        # The cast's own overflow flag, not another pass: float64 values beyond float32's
        # range would otherwise become infinities, reported as if the data held them.
        with np.errstate(over="raise"):
            arr = np.ascontiguousarray(arr, dtype=dtype)
    except FloatingPointError:
        raise ValueError(f"{name} holds values beyond the range of {np.dtype(dtype).name} "
                         f"(largest {np.finfo(dtype).max:.4g}): scale them, or use "
                         f"dtype=numpy.float64") from None
    if check_finite and not _all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _all_finite(arr, rows_per_check=4096):
    """``np.isfinite(arr).all()`` without a boolean copy of a large ``arr`` (checked
    ``rows_per_check`` rows, or elements of a 1-D ``arr``, at a time)."""
    return all(np.isfinite(arr[i:i + rows_per_check]).all()
               for i in range(0, arr.shape[0], rows_per_check))


class Network:
    """A fully-connected feedforward network trained by backpropagation.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input layer first, e.g. ``[2, 4, 1]``; at least two entries.
    hidden_activation : {"sigmoid", "tanh", "relu", "identity"}, default "sigmoid"
        ``g`` of every hidden layer ("logistic" is accepted for "sigmoid").
    output_activation : {"identity", "sigmoid", "tanh", "relu", "softmax", "exp"}, \
default "identity"
        ``g_o`` of the output layer. "softmax" requires ``loss="cross_entropy"``.
    loss : {"mse", "cross_entropy", "binary_cross_entropy", "poisson"}, default "mse"
        Per-sample error: mse ``1/2 sum_k (yhat_k - y_k)^2``; cross_entropy
        ``-sum_k y_k log yhat_k`` (softmax output); binary_cross_entropy
        ``-sum_k [y_k log yhat_k + (1 - y_k) log(1 - yhat_k)]`` (sigmoid output); poisson
        (half deviance, exp output). The error of a set of rows is the mean over rows.
    dtype : numpy.float32 or numpy.float64, default numpy.float64
        Precision of parameters and arithmetic; inputs are converted once.
    init : {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal"}, default "glorot_uniform"
        Initial weights (see ``fastbp._init.initial_parameters``).
    random_state : int, numpy.random.Generator or None
        Seeds the initial weights and the network's shuffling stream.
    n_threads : int or None
        Threads for the compiled kernels (``None``: ``NUMBA_NUM_THREADS``, by default the
        number of cores; larger requests are capped there). Results are bitwise the same
        for every thread count.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[k]`` has shape ``(layer_sizes[k], layer_sizes[k+1])`` (scikit-learn's
        ``coefs_`` layout); writable views of the parameters.
    biases : list of ndarray
        ``biases[k]`` has shape ``(layer_sizes[k+1],)``.
    loss_curve_ : list of float
        Training error of every epoch of every ``fit`` call, in order.

    Raises
    ------
    MemoryError
        When the parameters, their gradient and backup would not fit in the machine's
        physical memory (raised before any of them is allocated; ``fit`` checks again for
        the optimizer's state).

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    >>> Y = np.array([[0], [1], [1], [0]], float)
    >>> net = fastbp.Network([2, 4, 1], output_activation="sigmoid", random_state=0)
    >>> net = net.fit(X, Y, epochs=10000, learning_rate=0.5)
    >>> net.predict(X).round().ravel().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """

    def __init__(self, layer_sizes, hidden_activation="sigmoid", output_activation="identity",
                 loss="mse", dtype=np.float64, init="glorot_uniform", random_state=None,
                 n_threads=None):
        sizes = self._check_layer_sizes(layer_sizes)
        _check_activations_and_loss(hidden_activation, output_activation, loss)
        _check_choice(init, "init", INITS)
        self._setup(sizes, hidden_activation, output_activation, loss, _check_dtype(dtype),
                    n_threads)
        rng = _check_random_state(random_state)
        weights, biases = initial_parameters(sizes, init, hidden_activation, rng, self.dtype)
        self._engine.set_params(weights, biases)
        self._rng_state = seed_state(rng)

    @classmethod
    def from_weights(cls, weights, biases, hidden_activation="sigmoid",
                     output_activation="identity", loss="mse", dtype=None, random_state=None,
                     n_threads=None):
        """A network holding copies of given parameters.

        Parameters
        ----------
        weights : sequence of array_like
            ``weights[k]`` of shape ``(n_in, n_out)``; consecutive layers must chain.
        biases : sequence of array_like
            ``biases[k]`` of shape ``(n_out,)`` matching ``weights[k]``.
        hidden_activation, output_activation, loss, random_state, n_threads
            As for :class:`Network`.
        dtype : numpy.float32, numpy.float64 or None
            ``None`` keeps the dtype of ``weights[0]`` when it is float32 or float64, and
            uses float64 otherwise.
        """
        if not isinstance(weights, (list, tuple)) or not isinstance(biases, (list, tuple)):
            raise TypeError("weights and biases must be lists of arrays")
        if len(weights) == 0 or len(weights) != len(biases):
            raise ValueError(f"weights and biases must be non-empty lists of equal length, "
                             f"got {len(weights)} and {len(biases)}")
        ws = [np.asarray(w) for w in weights]
        bs = [np.asarray(b) for b in biases]
        if dtype is None:
            dtype = ws[0].dtype if ws[0].dtype in _DTYPES else np.float64
        dtype = _check_dtype(dtype)
        for k, (w, b) in enumerate(zip(ws, bs)):
            if w.ndim != 2:
                raise ValueError(f"weights[{k}] must be 2-dimensional (n_in, n_out), "
                                 f"got shape {w.shape}")
            if b.shape != (w.shape[1],):
                raise ValueError(f"biases[{k}] must have shape ({w.shape[1]},) to match "
                                 f"weights[{k}] {w.shape}, got {b.shape}")
            if k > 0 and w.shape[0] != ws[k - 1].shape[1]:
                raise ValueError(f"weights[{k}] has {w.shape[0]} rows but weights[{k - 1}] "
                                 f"has {ws[k - 1].shape[1]} columns: layers must chain")
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ValueError(f"weights[{k}] or biases[{k}] contains NaN or infinity")
        sizes = cls._check_layer_sizes([ws[0].shape[0]] + [w.shape[1] for w in ws])
        _check_activations_and_loss(hidden_activation, output_activation, loss)
        net = cls.__new__(cls)
        net._setup(sizes, hidden_activation, output_activation, loss, dtype, n_threads)
        net._engine.set_params(ws, bs)
        net._rng_state = seed_state(_check_random_state(random_state))
        return net

    @staticmethod
    def _check_layer_sizes(layer_sizes):
        try:
            sizes = list(layer_sizes)
        except TypeError:
            raise TypeError("layer_sizes must be a sequence of ints, e.g. [2, 4, 1]") from None
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output layer, "
                             f"got {sizes}")
        return [_check_positive_int(s, f"layer_sizes[{i}]") for i, s in enumerate(sizes)]

    def _setup(self, sizes, hidden_activation, output_activation, loss, dtype, n_threads):
        self.layer_sizes = sizes
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.loss_name = loss
        self.dtype = dtype
        self._engine = Engine(sizes, hidden_activation, output_activation, loss, dtype)
        self.n_threads = n_threads
        self.loss_curve_ = []

    # -- properties -----------------------------------------------------------------------
    @property
    def n_threads(self):
        """Threads for the compiled kernels (``None``: ``NUMBA_NUM_THREADS``)."""
        return self._engine.n_threads

    @n_threads.setter
    def n_threads(self, value):
        self._engine.n_threads = _check_positive_int(value, "n_threads", allow_none=True)

    @property
    def weights(self):
        """``weights[k]``: ``(n_in, n_out)`` writable views of the parameters."""
        return self._engine.weights

    @property
    def biases(self):
        """``biases[k]``: ``(n_out,)`` writable views of the parameters."""
        return self._engine.biases

    def __repr__(self):
        return (f"Network({self.layer_sizes}, hidden_activation={self.hidden_activation!r}, "
                f"output_activation={self.output_activation!r}, loss={self.loss_name!r}, "
                f"dtype={self.dtype.name})")

    # -- input checks ----------------------------------------------------------------------
    def _XY(self, X, Y):
        # X's finiteness is checked by the compiled calls as they read the rows (a
        # separate pass over a large X cost about 5% of a one-epoch fit).
        X = _as_matrix(X, "X", self.dtype, self.layer_sizes[0], check_finite=False)
        Y = _as_matrix(Y, "Y", self.dtype, self.layer_sizes[-1], n_rows=X.shape[0])
        if self.loss_name in ("cross_entropy", "poisson") and (Y < 0).any():
            raise ValueError(f"Y must be >= 0 for loss={self.loss_name!r}")
        if self.loss_name == "binary_cross_entropy" and ((Y < 0) | (Y > 1)).any():
            raise ValueError("Y must lie in [0, 1] for loss='binary_cross_entropy'")
        return X, Y

    # -- evaluation --------------------------------------------------------------------------
    def predict(self, X):
        """Network outputs.

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])

        Returns
        -------
        ndarray of shape (n_samples, layer_sizes[-1])
        """
        return self._engine.predict(_as_matrix(X, "X", self.dtype, self.layer_sizes[0],
                                               check_finite=False))

    def loss(self, X, Y):
        """Mean over the rows of the per-sample error (see ``loss`` in :class:`Network`).

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])
        Y : array_like of shape (n_samples, layer_sizes[-1])

        Returns
        -------
        float
        """
        return float(self._engine.loss(*self._XY(X, Y)))

    def gradients(self, X, Y):
        """Gradient of :meth:`loss` with respect to every parameter.

        Returns
        -------
        dW : list of ndarray
            Shaped like :attr:`weights`.
        db : list of ndarray
            Shaped like :attr:`biases`.
        """
        _, _, grad = self._engine.loss_and_gradient(*self._XY(X, Y))
        dW, db = self._engine.split(grad)
        return dW, db

    def score(self, X, Y):
        """Accuracy for classifiers, coefficient of determination R^2 otherwise.

        A softmax network is right when the largest output is the largest target; a
        sigmoid/binary_cross_entropy network when every output rounds to its target.
        """
        X, Y = self._XY(X, Y)
        P = self._engine.predict(X)
        if self.output_activation == "softmax":
            return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))
        if self.loss_name == "binary_cross_entropy":
            return float(np.mean(((P > 0.5) == (Y > 0.5)).all(axis=1)))
        ss_res = ((Y - P) ** 2).sum()
        ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum()
        return float(1.0 - ss_res / ss_tot) if ss_tot > 0 else 0.0

    # -- training ------------------------------------------------------------------------------
    def fit(self, X, Y, epochs=1, learning_rate=0.1, batch_size=None, optimizer="sgd",
            momentum=0.9, shuffle=True, random_state=None, verbose=False, l2=0.0,
            beta_1=0.9, beta_2=0.999, epsilon=1e-8, sample_weight=None):
        """Train by backpropagation, starting from the current parameters.

        Parameters
        ----------
        X : array_like of shape (n_samples, layer_sizes[0])
        Y : array_like of shape (n_samples, layer_sizes[-1])
            Targets (one-hot rows for classification). 1-D is accepted for one output.
        epochs : int, default 1
            Passes over the data.
        learning_rate : float, default 0.1
            Step size ``alpha`` (> 0).
        batch_size : int or None, default None
            Rows per step: ``None`` is full batch, 1 is online (one row at a time). The
            last batch of an epoch holds the remainder.
        optimizer : {"sgd", "momentum", "nesterov", "adam"}, default "sgd"
            Its state (velocities, moments) starts at zero at every ``fit`` call.
        momentum : float in [0, 1), default 0.9
            For "momentum" and "nesterov".
        shuffle : bool, default True
            Visit the rows in a new random order every epoch; ``False`` keeps the order.
        random_state : int, numpy.random.Generator or None
            Re-seeds the shuffling stream; ``None`` continues the network's own stream.
        verbose : bool, default False
            Print the error and elapsed time after each epoch.
        l2 : float, default 0
            L2 penalty: adds ``0.5 * l2 * sum_k ||W_k||^2 / batch_rows`` to each batch error.
        beta_1, beta_2, epsilon : float
            Adam's parameters.
        sample_weight : array_like of shape (n_samples,), optional
            Per-row weights: a batch's error is the weighted mean of its rows' errors.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If the arguments are invalid, or the current weights or biases (written through
            :attr:`weights` and :attr:`biases`) contain NaN or infinity.
        TrainingDiverged
            If the error or a parameter becomes non-finite; the network keeps the
            parameters of the end of the last completed epoch.
        MemoryError
            If the optimizer's state, or the losses of ``epochs`` epochs (``loss_curve_``
            keeps them all), would not fit in physical memory, or the work buffers for
            this batch size cannot be allocated: the parameters and ``loss_curve_`` are
            then left as they were.
        """
        X, Y = self._XY(X, Y)
        n = X.shape[0]
        epochs = _check_positive_int(epochs, "epochs")
        learning_rate = _check_real(learning_rate, "learning_rate", 0.0)
        batch_size = _check_positive_int(batch_size, "batch_size", allow_none=True)
        _check_choice(optimizer, "optimizer", OPTIMIZERS)
        momentum = _check_real(momentum, "momentum", 0.0, 1.0, low_inclusive=True)
        beta_1 = _check_real(beta_1, "beta_1", 0.0, 1.0, low_inclusive=True)
        beta_2 = _check_real(beta_2, "beta_2", 0.0, 1.0, low_inclusive=True)
        epsilon = _check_real(epsilon, "epsilon", 0.0)
        l2 = _check_real(l2, "l2", 0.0, low_inclusive=True)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        rng = None if random_state is None else _check_random_state(random_state)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            _check_numeric(sample_weight, "sample_weight")
            if sample_weight.shape != (n,):
                raise ValueError(f"sample_weight must have shape ({n},), "
                                 f"got {sample_weight.shape}")
            sample_weight = np.ascontiguousarray(sample_weight, dtype=self.dtype)
            if not np.isfinite(sample_weight).all() or (sample_weight < 0).any():
                raise ValueError("sample_weight must be finite and >= 0")
            if sample_weight.sum() <= 0:
                raise ValueError("sample_weight must not be all zero")
        engine = self._engine
        # One fit at a time per network: another thread's fit would reset the optimizer
        # and the epoch count under this one.
        with engine.lock:
            # Parameters written through ``weights``/``biases`` may be non-finite: training
            # from them would be reported as a divergence caused by the learning rate.
            if not _all_finite(engine.theta, 1 << 20):
                raise ValueError("the network's weights or biases contain NaN or infinity: "
                                 "set finite values before fit")
            # Then: it may raise MemoryError, which then finds the network unchanged.
            engine.set_optimizer(optimizer, momentum=momentum, beta_1=beta_1, beta_2=beta_2,
                                 epsilon=epsilon)
            rng_before = self._rng_state
            if rng is not None:
                self._rng_state = seed_state(rng)
            start = time.perf_counter()
            first_epoch = len(self.loss_curve_)

            def record(first, data_sums, penalty_sums):
                losses = ((data_sums + penalty_sums) / n).tolist()
                self.loss_curve_.extend(losses)
                if verbose:
                    elapsed = time.perf_counter() - start
                    for k, value in enumerate(losses, start=first + 1):
                        print(f"epoch {k}/{epochs}  loss {value:.6g}  ({elapsed:.2f} s)",
                              flush=True)

            try:
                engine.train(X, Y, epochs, n if batch_size is None else batch_size,
                             learning_rate, bool(shuffle), rng_state=self._rng_state,
                             sample_weight=sample_weight, l2=l2, on_epochs=record,
                             epoch_per_call=verbose)
            except (NonFiniteInput, MemoryError):
                # Bad input (found in the first epoch, and rolled back by the engine) or no
                # room before any step: the shuffling stream too is as the call found it.
                if engine.epochs_done == 0:
                    self._rng_state = rng_before
                raise
            finally:
                # An interrupt can land between a compiled call and its report: make the
                # curve match the parameters (the last completed epoch) whatever happened.
                done = first_epoch + engine.epochs_done
                del self.loss_curve_[done:]
                for e in range(len(self.loss_curve_) - first_epoch, engine.epochs_done):
                    self.loss_curve_.append(
                        (engine.last_data_sums[e] + engine.last_penalty_sums[e]) / n)
        return self
