"""The engine: parameter storage, work buffers and dispatch to the compiled kernels.

``Engine`` is the layer between the public estimators (``fastbp.Network`` and the
scikit-learn compatible ``MLPClassifier``/``MLPRegressor``) and ``fastbp.kernels``. It
owns the flat parameter vector, the optimizer state and the preallocated work buffers,
decides the block size and whether a product is worth threads, and runs training in
bounded compiled chunks. It does no input validation: callers hand it C-contiguous
arrays of its dtype with consistent shapes.

Parameter layout (``Engine.theta``): for each layer ``l`` in turn, ``W_l`` row-major with
shape ``(layer_sizes[l], layer_sizes[l+1])``, then ``b_l``. ``weights``/``biases`` are
writable views into it.
"""

import os
import threading

import numpy as np

from . import kernels
from ._codes import ACTIVATIONS, CLIPPED, DIVERGED, LOSSES, NON_FINITE_INPUT, OPTIMIZERS
from ._rng import seed_state
from ._team import TEAM_FLOATS, team_ints
from ._threads import blas_on_one_thread, resolve_n_threads, run_on_team

# Rows per block: products over more rows than this are accumulated block by block,
# which bounds the work buffers whatever the batch (full batch included).
MAX_BLOCK_ROWS = 1024
# Rows per block of a prediction, which keeps no error terms or gradients: more rows
# give more tiles per product, so that more threads share each pass. On a 16-core
# AVX-512 machine, W5 (784-128-10) on 16 threads ran 3.6x faster than on one with
# 1024-row blocks (8 tiles of the first product) and 6.2x with 4096 (32 tiles).
PREDICT_BLOCK_ROWS = 4096
# ... halved, down to MAX_BLOCK_ROWS, while a block's activations would take more memory
# than this (wide networks): a function of the layer sizes and dtype, never of threads.
PREDICT_BLOCK_BYTES = 64 << 20
# FLOPs per block (forward products) below which a second thread is not worth it.
# Measured on 2 cores with the thread team (float32, relu/softmax, us per step, 1 thread
# against 2): 64-64-10 with 32-row batches (0.3 MFLOP) 11.5-14.0 against 12.1-12.8;
# 50-200-10/64 (1.5 MFLOP) 50 against 48; 20-300-4/128 (1.8 MFLOP) 71 against 64;
# 30-100-10/256 (2.0 MFLOP) 92 against 64; 64-100-10/200 (3.0 MFLOP, scikit-learn's digits
# defaults) 110 against 89; 64-256-10/128 (4.8 MFLOP) 161 against 129; 100-300-4/128
# (8 MFLOP) 241 against 153. W3 (784-128-10, 128-row batches, 26 MFLOP) gains 1.7x. But
# the threaded path is compiled on its own: the digits defaults' first fit, empty cache,
# took 9.1-10.5 s on it against 7.6-8.0 s serially, to save 0.02 s of a 60-epoch 0.1 s
# fit. So small networks stay serial; and with another process busy on a core, 2 threads
# took 6-8% longer than one at 2-3 MFLOP.
PARALLEL_MIN_FLOPS = 4_000_000
# Work per compiled call (in FLOPs): keeps Ctrl-C and progress reporting responsive
# (well under a second per call even at a few GFLOP/s) while amortising the call.
FLOPS_PER_CALL = 4e9
# Chunk of theta that one thread updates in one task (about this many parameters; each
# layer's weights and biases are split into equal chunks). Small chunks keep the
# threads' shares even: when each thread took a fixed run of chunks, 16384 gave one of
# two threads 82K of W3's 102K parameters, and W3 took 0.194 s against 0.186 s with 2048
# (float32, 2 threads, medians of 5).
UPDATE_CHUNK = 2048
# Networks with at most this many weights take the fused row-at-a-time path
# (``kernels._fused_block``), where tile and BLAS set-up would cost more than the
# arithmetic. Decided by the layer sizes only, so results never depend on thread counts.
# Measured (float32, tanh/softmax, us per step, fused vs tiled): 28 weights 6.1 vs 7.8
# (batch 32), 304 weights 15.2 vs 15.3, 1120 weights 27.4 vs 26.9; with 200-row batches
# the tiled path already wins at 88 weights, with 4-row batches fused still wins at 1120.
FUSED_MAX_WEIGHTS = 256


def physical_memory():
    """Bytes of physical memory of this machine, or ``None`` where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(layer_sizes, optimizer, n_params, n_values, dtype):
    """Raise ``MemoryError`` when ``n_values`` values of ``dtype`` (all the arrays an
    engine holds with ``optimizer``: the parameters, their gradient and end-of-epoch
    backup, and the optimizer state with its backup) would not fit in physical memory.

    Checked before any of them is allocated: the operating system hands out memory it
    has not got, and filling those arrays (the initial weights) would then get the
    process killed instead of raising a catchable error.
    """
    need = n_values * np.dtype(dtype).itemsize
    have = physical_memory()
    if have is not None and need > have:
        raise MemoryError(
            f"layer_sizes {layer_sizes} give {n_params:,} parameters: with optimizer "
            f"{optimizer!r} their {np.dtype(dtype).name} arrays (parameters, gradient, "
            f"backup, optimizer state) need {need / 2**30:,.1f} GiB, more than this "
            f"machine's {have / 2**30:,.1f} GiB of memory")


def _update_chunks(segments):
    """The optimizer's chunks: each ``(start, stop, is_weight)`` segment of ``theta`` split
    into equal runs of about ``UPDATE_CHUNK`` values, as rows ``[start, stop, is_weight]``
    of an int64 array."""
    parts = []
    for start, stop, is_weight in segments:
        n = stop - start
        n_chunks = -(-n // UPDATE_CHUNK)
        bounds = start + np.arange(n_chunks + 1, dtype=np.int64) * n // n_chunks
        part = np.empty((n_chunks, 3), np.int64)
        part[:, 0], part[:, 1], part[:, 2] = bounds[:-1], bounds[1:], is_weight
        parts.append(part)
    return np.concatenate(parts)


class TrainingDiverged(FloatingPointError):
    """Raised when training produced a non-finite error or parameter.

    The network is left at the parameters it had at the end of the last completed epoch.
    """


class NonFiniteInput(ValueError):
    """Raised when ``X`` holds NaN or infinity; the compiled calls check the rows as they
    read them, and training rolls back to the parameters it started from."""

    def __init__(self):
        super().__init__("X contains NaN or infinity")


class _Workspace:
    """Work buffers for blocks of at most ``rows`` rows (see ``fastbp.kernels``)."""

    def __init__(self, sizes, rows, dtype, n_chunks):
        self.rows = rows
        width = int(sizes.sum())
        self.act_off = np.concatenate(([0], np.cumsum(sizes[:-1] * rows))).astype(np.int64)
        self.acts = np.zeros(rows * width, dtype)
        self.deltas = np.zeros(rows * width, dtype)
        n_out = int(sizes[-1])
        self.logits = np.zeros(rows * n_out, dtype)
        self.ybuf = np.zeros(rows * n_out, dtype)
        self.swbuf = np.zeros(rows, dtype)
        self.row_loss = np.zeros(rows, dtype)
        self.row_offs = np.zeros(rows, np.int64)
        max_team = resolve_n_threads(None)  # no team is larger
        self.scalars = np.zeros(2 * max_team, dtype)
        self.weight_sq = np.zeros(n_chunks, np.float64)
        self.team_i = np.zeros(team_ints(max_team), np.int64)  # the team's shared slots
        self.team_f = np.zeros(TEAM_FLOATS, np.float64)


class Engine:
    """Flat parameters, optimizer state and work buffers of one network.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first: ``[n_features, h1, ..., n_outputs]``.
    hidden_activation, output_activation : str
        Names from ``fastbp._codes.ACTIVATIONS``.
    loss : str
        Name from ``fastbp._codes.LOSSES``.
    dtype : numpy float dtype
        ``float32`` or ``float64``.
    n_threads : int or None
        Threads for compiled calls; ``None`` uses ``NUMBA_NUM_THREADS`` of them.
    clip_probabilities : bool
        Report the *value* of cross_entropy/binary_cross_entropy with the probabilities
        clipped to ``[eps, 1 - eps]`` (``eps`` of the dtype) before the log, as
        scikit-learn does; gradients are unchanged.
    """

    def __init__(self, layer_sizes, hidden_activation, output_activation, loss, dtype,
                 n_threads=None, clip_probabilities=False):
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        self.hidden_code = ACTIVATIONS[hidden_activation]
        self.output_code = ACTIVATIONS[output_activation]
        self.loss_code = LOSSES[loss]
        if clip_probabilities:
            self.loss_code = CLIPPED.get(self.loss_code, self.loss_code)
        self.dtype = np.dtype(dtype)
        self.n_threads = n_threads
        n_layers = len(self.layer_sizes) - 1
        self.w_off = np.zeros(n_layers, np.int64)
        self.b_off = np.zeros(n_layers, np.int64)
        segments, pos = [], 0  # (start, stop, is_weight) of each layer's weights and biases
        for l in range(n_layers):
            n_w = self.layer_sizes[l] * self.layer_sizes[l + 1]
            self.w_off[l], self.b_off[l] = pos, pos + n_w
            segments += [(pos, pos + n_w, 1), (pos + n_w, pos + n_w + self.layer_sizes[l + 1], 0)]
            pos += n_w + self.layer_sizes[l + 1]
        self.n_params = pos
        self.set_optimizer("sgd")  # first: it checks the memory for all these arrays
        n_weights = self.n_params - sum(self.layer_sizes[1:])
        self.fused = n_weights <= FUSED_MAX_WEIGHTS
        self.chunks = _update_chunks(segments)
        self.theta = np.zeros(self.n_params, self.dtype)
        self.grad = np.zeros(self.n_params, self.dtype)
        self._workspaces = {}
        # Compiled calls share the work buffers: one call at a time per engine (calls on
        # different networks still run concurrently; the kernels release the GIL). Callers
        # hold it too where several calls make one operation (``Network.fit``).
        self.lock = threading.RLock()

    # -- pickling: parameters and optimizer state travel, work buffers are rebuilt --------
    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_workspaces", "_backups", "grad", "lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        # Loaders may hand back read-only arrays (e.g. joblib's memory maps): own them.
        state = {k: (np.array(v) if isinstance(v, np.ndarray) and not v.flags.writeable else v)
                 for k, v in state.items()}
        self.__dict__.update(state)
        self._workspaces = {}
        self.lock = threading.RLock()
        self.grad = np.zeros(self.n_params, self.dtype)
        self._backups = (np.zeros(self.n_params, self.dtype), np.zeros_like(self.opt_m),
                         np.zeros_like(self.opt_v))

    # -- parameters ---------------------------------------------------------------------
    @property
    def weights(self):
        """List of writable views: ``weights[l]`` has shape ``(n_in, n_out)``."""
        return [self.theta[o:o + a * b].reshape(a, b)
                for o, a, b in zip(self.w_off, self.layer_sizes[:-1], self.layer_sizes[1:])]

    @property
    def biases(self):
        """List of writable views: ``biases[l]`` has shape ``(n_out,)``."""
        return [self.theta[o:o + b] for o, b in zip(self.b_off, self.layer_sizes[1:])]

    def set_params(self, weights, biases):
        """Copy ``weights``/``biases`` (shapes as in :attr:`weights`) into ``theta``."""
        for dst, src in zip(self.weights, weights):
            dst[...] = src
        for dst, src in zip(self.biases, biases):
            dst[...] = src

    def split(self, flat):
        """Views of a flat vector laid out like ``theta``: ``(weights list, biases list)``."""
        ws = [flat[o:o + a * b].reshape(a, b)
              for o, a, b in zip(self.w_off, self.layer_sizes[:-1], self.layer_sizes[1:])]
        bs = [flat[o:o + b] for o, b in zip(self.b_off, self.layer_sizes[1:])]
        return ws, bs

    def weight_sq_norm(self):
        """``sum_l ||W_l||^2`` (float64)."""
        return float(sum(np.dot(w.ravel(), w.ravel()) for w in self.weights))

    # -- optimizer ------------------------------------------------------------------------
    def set_optimizer(self, name, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        """Choose the optimizer and reset its state (velocities, Adam moments and step)."""
        n_m = self.n_params if name != "sgd" else 0
        n_v = self.n_params if name == "adam" else 0
        # Parameters, gradient and backup, then the optimizer state and its backup.
        _check_memory(self.layer_sizes, name, self.n_params,
                      3 * self.n_params + 2 * (n_m + n_v), self.dtype)
        # Allocated before anything is assigned: a MemoryError leaves the engine as it was.
        opt_m, opt_v = np.zeros(n_m, self.dtype), np.zeros(n_v, self.dtype)
        backups = (np.zeros(self.n_params, self.dtype), np.zeros(n_m, self.dtype),
                   np.zeros(n_v, self.dtype))
        self.opt_code = OPTIMIZERS[name]
        self.momentum, self.beta_1, self.beta_2, self.epsilon = momentum, beta_1, beta_2, epsilon
        self.opt_m, self.opt_v, self._backups = opt_m, opt_v, backups
        self.step = 0

    # -- dispatch helpers -----------------------------------------------------------------
    def _workspace(self, rows):
        ws = self._workspaces.get(rows)
        if ws is None:
            if len(self._workspaces) >= 4:  # keep memory bounded for varied predict sizes
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = _Workspace(self.sizes, rows, self.dtype, len(self.chunks))
            self._workspaces[rows] = ws
        return ws

    def _parallel(self, rows):
        """Use threads for blocks of ``rows`` rows? (Results are bitwise the same either
        way; this only chooses the faster path.)"""
        flops = 2 * rows * (self.n_params - int(self.sizes[1:].sum()))
        return (not self.fused and resolve_n_threads(self.n_threads) > 1
                and flops >= PARALLEL_MIN_FLOPS)

    def _paths(self, rows):
        """The kernels' ``fused``, ``tiled`` and ``threads`` flags: ``(True, None, None)``
        for the fused small-network path, else ``(None, True, None)`` (serial tiles) or
        ``(None, None, True)`` (tiles on a team of threads, see ``_run``)."""
        if self.fused:
            return True, None, None
        return (None, None, True) if self._parallel(rows) else (None, True, None)

    def _run(self, kernel, args, paths, ws):
        """``kernel(*args, *paths, ...)`` with the BLAS on one thread, on a team of
        ``n_threads`` threads for the threaded path (one thread otherwise)."""
        n_team = resolve_n_threads(self.n_threads) if paths[2] is not None else 1
        with blas_on_one_thread():
            return run_on_team(kernel, args, n_team, ws.team_i, ws.team_f)

    def _no_weights(self):
        return np.zeros(0, self.dtype)

    # -- forward, loss, gradient ------------------------------------------------------------
    def predict_block_rows(self):
        """Rows per block of a prediction (``PREDICT_BLOCK_ROWS``, fewer for wide
        networks: see ``PREDICT_BLOCK_BYTES``)."""
        row_bytes = int(self.sizes[1:].sum()) * np.dtype(self.dtype).itemsize
        rows = PREDICT_BLOCK_ROWS
        while rows > MAX_BLOCK_ROWS and rows * row_bytes > PREDICT_BLOCK_BYTES:
            rows //= 2
        return rows

    def predict(self, X):
        """Network outputs ``(n_samples, n_outputs)`` for a validated ``X``."""
        n = X.shape[0]
        out = np.empty((n, self.layer_sizes[-1]), self.dtype)
        if n == 0:
            return out
        rows = min(n, self.predict_block_rows())
        paths = self._paths(rows)
        with self.lock:
            ws = self._workspace(rows)
            finite = self._run(kernels.predict_rows, (
                X, self.theta, self.sizes, self.w_off, self.b_off, ws.act_off, self.hidden_code,
                self.output_code, rows, ws.acts, ws.logits, ws.row_offs, ws.scalars,
                *paths, out), paths, ws)
        if not finite:
            raise NonFiniteInput()
        return out

    def _loss_sum(self, X, Y, sample_weight, with_gradient):
        n = X.shape[0]
        rows = min(n, MAX_BLOCK_ROWS)
        weighted = sample_weight is not None
        sw = sample_weight if weighted else self._no_weights()
        paths = self._paths(rows)
        with self.lock:
            ws = self._workspace(rows)
            loss_sum, weight_sum, finite = self._run(kernels.batch_loss_and_gradient, (
                X, Y, sw, weighted, np.arange(n, dtype=np.int64), 0, n, with_gradient,
                self.theta, self.sizes, self.w_off, self.b_off, ws.act_off, self.hidden_code,
                self.output_code, self.loss_code, rows, ws.acts, ws.logits, ws.ybuf, ws.swbuf,
                ws.deltas, ws.row_loss, ws.row_offs, self.grad, ws.scalars, *paths), paths, ws)
        if not finite:
            raise NonFiniteInput()
        return loss_sum, weight_sum

    def loss(self, X, Y, sample_weight=None):
        """Mean (weighted) per-sample error of the network on ``X, Y``."""
        loss_sum, weight_sum = self._loss_sum(X, Y, sample_weight, False)
        return loss_sum / weight_sum

    def loss_and_gradient(self, X, Y, sample_weight=None, l2=0.0):
        """Error and its gradient over all rows, with an optional L2 penalty.

        Returns
        -------
        data_loss : float
            ``sum_i w_i loss_i / sum_i w_i``.
        penalty : float
            ``0.5 * l2 * sum_l ||W_l||^2 / sum_i w_i``.
        grad : ndarray
            New flat array laid out like ``theta``: the gradient of ``data_loss + penalty``.
        """
        with self.lock:  # self.grad is shared: copy it before another call overwrites it
            loss_sum, weight_sum = self._loss_sum(X, Y, sample_weight, True)
            grad = self.grad.copy()
        penalty = 0.0
        if l2 > 0:
            penalty = 0.5 * l2 * self.weight_sq_norm() / weight_sum
            for g, w in zip(self.split(grad)[0], self.weights):
                g += (l2 / weight_sum) * w
        return loss_sum / weight_sum, penalty, grad

    # -- training ---------------------------------------------------------------------------
    def train(self, X, Y, epochs, batch_size, learning_rate, shuffle, rng_state=None,
              order=None, sample_weight=None, l2=0.0, on_epochs=None, epoch_per_call=False):
        """Train for ``epochs`` epochs with the current optimizer.

        Parameters
        ----------
        X, Y : ndarray
            Validated, C-contiguous, of the engine's dtype.
        epochs, batch_size : int
            ``batch_size`` rows per step (the last batch of an epoch holds the remainder).
        learning_rate : float
        shuffle : bool
            Permute the rows at every epoch start with the compiled generator
            (``rng_state``, a 1-element uint64 array, advanced in place).
        order : ndarray of int, optional
            Visiting order when not shuffling (default: the given row order).
        sample_weight : ndarray, optional
        l2 : float
            L2 penalty ``0.5 * l2 * ||W||^2 / batch weight sum`` added to each batch error.
        on_epochs : callable, optional
            Called between compiled calls as ``on_epochs(first, data_sums, penalty_sums)``
            with the sums of the epochs completed since the last report, ``first`` being
            the index of the first of them (one call per chunk, not per epoch: tiny
            networks run millions of epochs).
        epoch_per_call : bool
            End every compiled call at the end of an epoch at the latest, so that
            ``on_epochs`` reports each epoch as it completes (verbose progress).

        Returns
        -------
        data_loss_sums, penalty_sums : ndarray
            Per completed epoch, the sums over batches of ``rows * batch error``.

        Raises
        ------
        MemoryError
            When the per-epoch loss sums of ``epochs`` epochs would not fit in physical
            memory, or an allocation fails; nothing is trained and ``epochs_done`` is 0.
        TrainingDiverged
            Non-finite error or parameters; the engine keeps the parameters (and optimizer
            state) of the end of the last completed epoch.
        NonFiniteInput
            A row of ``X`` holds NaN or infinity (found in the first epoch, which reads
            every row of ``order``): the parameters, optimizer state and ``rng_state`` are
            those the call started with.
        KeyboardInterrupt
            Re-raised after the same roll-back to the last completed epoch.
        """
        # What a caller reads after this call whatever happens (``Network.fit`` reads it
        # in a ``finally``): no epochs done until the compiled calls say otherwise, not
        # the previous call's count when something below raises before they run.
        self.epochs_done = 0
        self.last_data_sums = self.last_penalty_sums = np.zeros(0)
        # The loss sums of every epoch are kept (``loss_curve_`` gets them all).
        need, have = 2 * 8 * epochs, physical_memory()
        if have is not None and need > have:
            raise MemoryError(
                f"epochs={epochs:,}: the losses of that many epochs alone need "
                f"{need / 2**30:,.1f} GiB, more than this machine's {have / 2**30:,.1f} GiB "
                f"of memory; ask for fewer epochs")
        n = X.shape[0]
        batch_size = min(int(batch_size), n)
        rows = min(batch_size, MAX_BLOCK_ROWS)
        weighted = sample_weight is not None
        sw = sample_weight if weighted else self._no_weights()
        if order is None:
            order = np.arange(n, dtype=np.int64)
        else:
            order = np.array(order, dtype=np.int64)
        if rng_state is None:
            rng_state = seed_state(0)
        rng_at_start = rng_state.copy()
        progress = np.zeros(kernels.N_PROGRESS_SLOTS, np.int64)
        progress[kernels.STEP] = self.step
        sums = np.zeros(3, np.float64)
        data_sums = np.zeros(epochs, np.float64)
        penalty_sums = np.zeros(epochs, np.float64)
        flops_per_step = 6.0 * self.n_params * batch_size
        max_steps = max(1, int(FLOPS_PER_CALL / flops_per_step))
        if epoch_per_call:
            max_steps = min(max_steps, -(-n // batch_size))
        paths = self._paths(rows)
        theta_b, m_b, v_b = self._backups
        reported = 0
        self.lock.acquire()  # the work buffers are this engine's: one call at a time
        try:
            # Inside the try: a workspace that cannot be allocated (MemoryError) must still
            # release the lock and report no epochs done (``Network.fit`` reads them).
            ws = self._workspace(rows)
            while progress[kernels.EPOCHS_DONE] < epochs:
                self._run(kernels.train_steps, (
                    X, Y, sw, weighted, shuffle, epochs, batch_size, max_steps,
                    self.theta, self.sizes, self.w_off, self.b_off, ws.act_off, self.chunks,
                    self.hidden_code, self.output_code, self.loss_code, self.opt_code,
                    learning_rate, self.momentum, self.beta_1, self.beta_2, self.epsilon,
                    l2, rows, *paths, order, rng_state, progress, sums,
                    data_sums, penalty_sums, ws.acts, ws.logits, ws.ybuf, ws.swbuf,
                    ws.deltas, ws.row_loss, ws.row_offs, self.grad, ws.scalars, ws.weight_sq,
                    self.opt_m, self.opt_v, theta_b, m_b, v_b), paths, ws)
                done = int(progress[kernels.EPOCHS_DONE])
                if on_epochs is not None and reported < done:
                    on_epochs(reported, data_sums[reported:done], penalty_sums[reported:done])
                    reported = done
                if progress[kernels.STATUS] == NON_FINITE_INPUT:
                    rng_state[:] = rng_at_start
                    raise NonFiniteInput()
                if progress[kernels.STATUS] == DIVERGED:
                    done = int(progress[kernels.EPOCHS_DONE])
                    raise TrainingDiverged(
                        f"training diverged in epoch {done + 1}: the error or a parameter "
                        f"became non-finite (try a smaller learning_rate). The parameters are "
                        f"those at the end of epoch {done}.")
        except KeyboardInterrupt:
            if progress[kernels.NEXT_ROW] != 0:  # interrupted mid-epoch: roll back
                self.theta[:] = theta_b
                self.opt_m[:] = m_b
                self.opt_v[:] = v_b
                progress[kernels.STEP] = progress[kernels.STEP_AT_EPOCH_START]
            raise
        finally:
            self.lock.release()
            self.step = int(progress[kernels.STEP])
            self.epochs_done = int(progress[kernels.EPOCHS_DONE])
            self.last_data_sums = data_sums[:self.epochs_done]
            self.last_penalty_sums = penalty_sums[:self.epochs_done]
        return data_sums, penalty_sums

    def train_epoch(self, X, Y, order, batch_size, learning_rate, sample_weight=None, l2=0.0):
        """One epoch visiting ``X[order]`` (no shuffling by the engine).

        Returns ``(data_loss_sum, penalty_sum)``: sums over batches of ``rows * batch error``
        (see :meth:`train`).
        """
        data, penalty = self.train(X, Y, 1, batch_size, learning_rate, False, order=order,
                                   sample_weight=sample_weight, l2=l2)
        return float(data[0]), float(penalty[0])
