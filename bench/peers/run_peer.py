"""Run one peer on one workload in this process, and write what it measured as JSON.

``bench/compare_peers.py`` starts this script once per (workload, peer), each in a
fresh interpreter, so that no peer's thread pools, JIT caches or allocator state
touch another's. It can also be run by hand::

    python bench/peers/run_peer.py --peer torch --workload W3 --dtype float32 \\
        --threads 2 --repeats 3 --data DIR --out result.json
    python bench/peers/run_peer.py --peak --dtype float32 --threads 2 --out peak.json
    python bench/peers/run_peer.py --products --workload W3 --threads 2 --repeats 3

``--data DIR`` holds the data and initial weights that ``compare_peers.py`` wrote
(``workloads.save_inputs``); without it the script makes them itself.

What is timed
-------------
* fit workloads: one whole training run (every epoch) from the shared initial
  weights. Building the model from the weights is not timed; moving the data into the
  library's array type once (``torch.from_numpy``, ``jax.device_put``) is not timed
  either, because a user does it once for many fits. Everything else is: validation,
  shuffling, batching, the updates.
* predict workloads (W5): one prediction of all rows, returned as a NumPy array.
* The first call (warm-up: JIT compilation, caches, first-touch) is reported on its
  own as ``first_call_s``; then ``repeats`` calls, each from the same initial weights,
  give ``times_s`` and their median ``median_s``.

Thread counts are pinned before any numerical library is imported: the usual
environment variables (``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``), ``torch.set_num_threads``, and the CPU
affinity of the process when fewer threads than CPUs are asked for. The affinity is
what binds JAX: measured with jax 0.10.2, neither ``XLA_FLAGS`` with
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` nor any other
variable kept XLA's CPU runtime off the second core, while an affinity of one CPU did
(XLA sizes its thread pool from the schedulable CPUs).
"""
import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS = ("fastbp", "reference", "sklearn", "torch", "jax")
SKIPPED_EXIT_CODE = 3


def pin_threads(n_threads):
    """Pin every thread pool this process may start to ``n_threads`` threads.

    Must run before NumPy, Numba, torch or JAX is imported: the variables are read
    once, when each library loads.

    Returns
    -------
    dict
        The settings made, for the record.
    """
    n = str(n_threads)
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = n
    if n_threads == 1:
        # The documented XLA idiom; kept for older jaxlib builds that honour it.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    # A CPU benchmark: on a machine with a GPU, JAX would otherwise run there.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    cpus = sorted(os.sched_getaffinity(0))
    if n_threads < len(cpus):
        os.sched_setaffinity(0, cpus[:n_threads])
    return {"threads": n_threads, "cpus": sorted(os.sched_getaffinity(0)),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "JAX_PLATFORMS": os.environ["JAX_PLATFORMS"]}


def _max_rss_mb():
    """Peak resident memory of this process so far, in MiB.

    ``VmHWM`` first: ``ru_maxrss`` would also count the parent's memory, which Linux
    carries into a child's figure across fork and exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --------------------------------------------------------------------------- peers
# Each peer builds its model from the shared weights in ``prepare`` (not timed) and
# does the timed work in ``run``: the whole training, or one prediction.


class FastbpPeer:
    """fastbp itself: ``Network.from_weights`` then ``fit`` / ``predict``."""

    def __init__(self, workload, X, Y, labels, weights, biases, dtype, n_threads):
        import fastbp

        self.fastbp = fastbp
        self.workload, self.X, self.Y = workload, X, Y
        self.weights, self.biases = weights, biases
        self.dtype, self.n_threads = dtype, n_threads
        self.version = getattr(fastbp, "__version__", "work tree")

    def _network(self):
        return self.fastbp.Network.from_weights(
            [w.copy() for w in self.weights], [b.copy() for b in self.biases],
            dtype=self.dtype, n_threads=self.n_threads, **self.workload.network_kwargs())

    def prepare(self):
        return self._network()

    def run(self, net):
        if self.workload.task == "predict":
            return net.predict(self.X)
        return net.fit(self.X, self.Y, **self.workload.fit_kwargs())

    def outputs(self, net):
        return net.predict(self.X)

    def parameters(self, net):
        """The trained weights and biases, for the bitwise digest."""
        return [*net.weights, *net.biases]


class ReferencePeer(FastbpPeer):
    """The plain-NumPy textbook implementation ``fastbp.reference.ReferenceNetwork``."""

    def _network(self):
        from fastbp.reference import ReferenceNetwork

        return ReferenceNetwork.from_weights(
            [w.copy() for w in self.weights], [b.copy() for b in self.biases],
            dtype=self.dtype, **self.workload.network_kwargs())


class SklearnPeer:
    """scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` with ``solver="sgd"``.

    Starting scikit-learn from given weights (checked against scikit-learn 1.9.1):
    with ``warm_start=True``, ``fit`` skips ``_initialize`` whenever ``coefs_`` exists,
    and builds a new ``SGDOptimizer`` over ``coefs_ + intercepts_`` on every call. So
    the model is fitted once, untimed, on a few rows (one of each class, so that
    ``classes_`` is complete) to create its fitted attributes; before every timed
    ``fit`` the shared initial weights are copied into ``coefs_`` / ``intercepts_``.
    ``tol=0`` with ``n_iter_no_change=inf`` makes it run every epoch; ``random_state``
    is reset by each ``fit``, so every repeat shuffles the same way.

    W1: ``MLPRegressor`` always has an identity output, so its XOR network is
    logistic hidden + *identity* output with squared error, the closest form
    scikit-learn offers to sigmoid + sigmoid; its final loss is not comparable.
    """

    _ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh",
                    "identity": "identity"}

    def __init__(self, workload, X, Y, labels, weights, biases, dtype, n_threads):
        import warnings

        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        from bench.workloads import SHUFFLE_SEED

        self.workload, self.X, self.labels = workload, X, labels
        self.weights, self.biases = weights, biases
        self.version = sklearn.__version__
        self.classifier = workload.is_classification
        n_rows = len(X)
        params = dict(
            hidden_layer_sizes=tuple(workload.layer_sizes[1:-1]),
            activation=self._ACTIVATIONS[workload.hidden_activation], solver="sgd",
            alpha=0.0, batch_size=workload.batch_size or n_rows,
            learning_rate="constant", learning_rate_init=workload.learning_rate or 0.1,
            momentum=0.0, nesterovs_momentum=False, max_iter=1, shuffle=workload.shuffle,
            random_state=SHUFFLE_SEED, tol=0.0, n_iter_no_change=float("inf"),
            early_stopping=False, warm_start=True)
        self.y = labels if self.classifier else Y.ravel()
        if self.classifier:
            self.model = MLPClassifier(**params)
            first_rows = [int(i) for i in
                          (list(labels).index(c) for c in sorted(set(labels.tolist())))]
        else:
            self.model = MLPRegressor(**params)
            first_rows = list(range(min(n_rows, 4)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # batch size clipped to the few rows
            self.model.fit(X[first_rows], self.y[first_rows])
        self.model.set_params(max_iter=max(workload.epochs, 1))
        # Every timed fit stops at max_iter on purpose; the warning would only be noise.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)

    def prepare(self):
        self.model.coefs_ = [w.copy() for w in self.weights]
        self.model.intercepts_ = [b.copy() for b in self.biases]
        return self.model

    def run(self, model):
        if self.workload.task == "predict":
            return model.predict_proba(self.X)
        return model.fit(self.X, self.y)

    def outputs(self, model):
        if self.classifier:
            return model.predict_proba(self.X)
        return model.predict(self.X).reshape(len(self.X), -1)


class TorchPeer:
    """PyTorch CPU eager, written the lean way.

    Per step: index gathers of the shuffled batch (``index_select``), ``addmm`` layers,
    the fused ``F.cross_entropy`` (log-softmax + NLL on class indices) and one
    ``torch._foreach_add_`` update from ``torch.autograd.grad`` (what
    ``torch.optim.SGD(foreach=True)`` does, without its per-step Python bookkeeping).
    The shuffle order comes from NumPy's generator seeded with ``SHUFFLE_SEED``.
    """

    def __init__(self, workload, X, Y, labels, weights, biases, dtype, n_threads):
        import numpy as np
        import torch
        import torch.nn.functional as F

        from bench.workloads import SHUFFLE_SEED

        self.shuffle_seed = SHUFFLE_SEED
        torch.set_num_threads(n_threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only allowed before the first parallel work
            pass
        self.np, self.torch, self.F = np, torch, F
        self.version = torch.__version__
        self.workload = workload
        self.weights, self.biases = weights, biases
        self.X = torch.from_numpy(X)
        self.Y = torch.from_numpy(Y)
        self.labels = torch.from_numpy(labels)
        self.hidden = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                       "identity": lambda a: a}[workload.hidden_activation]
        self.update = getattr(torch, "_foreach_add_", None)

    def prepare(self):
        torch = self.torch
        return ([torch.tensor(w, requires_grad=True) for w in self.weights]
                + [torch.tensor(b, requires_grad=True) for b in self.biases])

    def _logits(self, params, xb):
        n_layers = len(params) // 2
        h = xb
        for k in range(n_layers):
            h = self.torch.addmm(params[n_layers + k], h, params[k])
            if k < n_layers - 1:
                h = self.hidden(h)
        return h

    def _output(self, logits):
        activation = self.workload.output_activation
        if activation == "softmax":
            return self.torch.softmax(logits, dim=1)
        if activation == "sigmoid":
            return self.torch.sigmoid(logits)
        return logits

    def _loss(self, params, xb, yb, lb):
        logits = self._logits(params, xb)
        if self.workload.loss == "cross_entropy":
            return self.F.cross_entropy(logits, lb)
        out = self._output(logits)
        return self.F.mse_loss(out, yb, reduction="sum") * (0.5 / len(yb))

    def run(self, params):
        torch, workload = self.torch, self.workload
        if workload.task == "predict":
            with torch.inference_mode():
                return self._output(self._logits(params, self.X)).numpy()
        n_rows = len(self.X)
        batch = workload.batch_size or n_rows
        lr = workload.learning_rate
        rng = self.np.random.default_rng(self.shuffle_seed)
        for _ in range(workload.epochs):
            order = torch.from_numpy(rng.permutation(n_rows)) if workload.shuffle else None
            for start in range(0, n_rows, batch):
                if order is None:
                    xb, yb = self.X[start:start + batch], self.Y[start:start + batch]
                    lb = self.labels[start:start + batch]
                else:
                    idx = order[start:start + batch]
                    xb, yb = self.X.index_select(0, idx), self.Y.index_select(0, idx)
                    lb = self.labels.index_select(0, idx)
                loss = self._loss(params, xb, yb, lb)
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    if self.update is not None:
                        self.update(params, grads, alpha=-lr)
                    else:
                        for p, g in zip(params, grads):
                            p.sub_(g, alpha=lr)
        return params

    def outputs(self, params):
        with self.torch.inference_mode():
            return self._output(self._logits(params, self.X)).numpy()


class JaxPeer:
    """JAX with the whole training in one ``jax.jit``: ``lax.scan`` over batches.

    The compiled function takes the parameters, the data and the epochs' shuffle
    orders; an outer ``lax.scan`` runs the epochs and an inner one the full batches.
    The ragged last batch is neither padded nor dropped: it is one more (statically
    shaped) step after the scan, so every peer does exactly fastbp's batches: the
    full ones, then the smaller remainder. The shuffle orders come from NumPy's
    generator seeded with ``SHUFFLE_SEED`` and are made inside the timed call. The
    data are put on the device once, untimed.
    """

    def __init__(self, workload, X, Y, labels, weights, biases, dtype, n_threads):
        import numpy as np
        import jax

        from bench.workloads import SHUFFLE_SEED

        self.shuffle_seed = SHUFFLE_SEED
        jax.config.update("jax_enable_x64", str(dtype) == "float64")
        import jax.numpy as jnp
        from jax import lax

        self.np, self.jax, self.jnp = np, jax, jnp
        self.version = jax.__version__
        self.workload = workload
        self.weights, self.biases = weights, biases
        self.n_rows = len(X)
        self.X = jax.device_put(X)
        self.Y = jax.device_put(Y)
        self.labels = jax.device_put(labels.astype(np.int32))
        hidden = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
                  "identity": lambda a: a}[workload.hidden_activation]
        output = {"softmax": lambda a: jax.nn.softmax(a, axis=1),
                  "sigmoid": jax.nn.sigmoid, "identity": lambda a: a}[
                      workload.output_activation]
        lr = workload.learning_rate
        n_layers = len(weights)

        def logits_of(params, xb):
            Ws, bs = params
            h = xb
            for k in range(n_layers):
                h = h @ Ws[k] + bs[k]
                if k < n_layers - 1:
                    h = hidden(h)
            return h

        def loss_of(params, xb, yb, lb):
            logits = logits_of(params, xb)
            if workload.loss == "cross_entropy":
                picked = jnp.take_along_axis(logits, lb[:, None], axis=1)[:, 0]
                return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)
            return 0.5 * jnp.mean(jnp.sum((output(logits) - yb) ** 2, axis=1))

        grad_of = jax.grad(loss_of)

        def step(params, xb, yb, lb):
            grads = grad_of(params, xb, yb, lb)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

        batch = workload.batch_size or self.n_rows
        n_full, remainder = divmod(self.n_rows, batch)

        def step_on(params, idx, X, Y, L):
            return step(params, X[idx], Y[idx], L[idx])

        def epoch(params, order, X, Y, L):
            full = order[:n_full * batch].reshape(n_full, batch)
            params, _ = lax.scan(lambda p, idx: (step_on(p, idx, X, Y, L), None),
                                 params, full)
            if remainder:
                params = step_on(params, order[n_full * batch:], X, Y, L)
            return params

        def train_shuffled(params, orders, X, Y, L):
            params, _ = lax.scan(lambda p, order: (epoch(p, order, X, Y, L), None),
                                 params, orders)
            return params

        def train_full_batch(params, X, Y, L):
            # Full batch without shuffling: no gather at all, the step sees X itself.
            params, _ = lax.scan(lambda p, _: (step(p, X, Y, L), None), params, None,
                                 length=workload.epochs)
            return params

        self.full_batch = workload.batch_size is None or workload.batch_size >= self.n_rows
        self.train = jax.jit(train_full_batch if self.full_batch else train_shuffled)
        self.predict = jax.jit(lambda params, X: output(logits_of(params, X)))

    def prepare(self):
        jnp = self.jnp
        return ([jnp.asarray(w) for w in self.weights], [jnp.asarray(b) for b in self.biases])

    def run(self, params):
        workload = self.workload
        if workload.task == "predict":
            return self.np.asarray(self.predict(params, self.X))
        if self.full_batch:
            params = self.train(params, self.X, self.Y, self.labels)
        else:
            rng = self.np.random.default_rng(self.shuffle_seed)
            if workload.shuffle:
                orders = [rng.permutation(self.n_rows) for _ in range(workload.epochs)]
            else:
                orders = [self.np.arange(self.n_rows)] * workload.epochs
            orders = self.np.stack(orders).astype(self.np.int32)
            params = self.train(params, orders, self.X, self.Y, self.labels)
        return self.jax.block_until_ready(params)

    def outputs(self, params):
        return self.np.asarray(self.predict(params, self.X))


PEER_CLASSES = {"fastbp": FastbpPeer, "reference": ReferencePeer, "sklearn": SklearnPeer,
                "torch": TorchPeer, "jax": JaxPeer}
_IMPORT_NAMES = {"fastbp": "fastbp", "reference": "fastbp", "sklearn": "sklearn",
                 "torch": "torch", "jax": "jax"}


# --------------------------------------------------------------------------- harness


def measure_peer(peer_name, workload, dtype, n_threads, repeats, data_dir):
    """Warm up, time ``repeats`` runs and evaluate the trained model of one peer.

    Returns
    -------
    dict
        ``first_call_s``, ``times_s``, ``median_s``, ``loss``, ``accuracy``,
        ``rss_before_fit_mb`` (peak RSS with the data and the model loaded, before
        the first call), ``peak_rss_mb`` (peak RSS of the whole process),
        ``outputs_sha256`` (``array_digest`` of the outputs) and, for the peers that
        expose their trained parameters (fastbp, the NumPy reference),
        ``parameters_sha256``.
    """
    from bench import workloads

    X, Y, labels, weights, biases = workloads.load_inputs(workload, dtype, data_dir)
    peer = PEER_CLASSES[peer_name](workload, X, Y, labels, weights, biases, dtype,
                                   n_threads)
    state = peer.prepare()
    rss_before = _max_rss_mb()

    start = time.perf_counter()
    result = peer.run(state)
    first_call = time.perf_counter() - start

    times = []
    for _ in range(repeats):
        state = peer.prepare()
        start = time.perf_counter()
        result = peer.run(state)
        times.append(time.perf_counter() - start)

    outputs = result if workload.task == "predict" else peer.outputs(result)
    quality = workloads.evaluate(workload, outputs, Y, labels)
    record = {"version": str(peer.version), "first_call_s": first_call, "times_s": times,
              "median_s": statistics.median(times) if times else None,
              "loss": quality["loss"], "accuracy": quality["accuracy"],
              "rss_before_fit_mb": rss_before, "peak_rss_mb": _max_rss_mb(),
              "outputs_sha256": array_digest([outputs])}
    if hasattr(peer, "parameters"):
        # Of the last timed run's model: every run starts from the same weights, so a
        # digest that changes with the thread count means the bits depend on it.
        record["parameters_sha256"] = array_digest(peer.parameters(state))
    return record


def array_digest(arrays):
    """SHA-256 of the dtypes, shapes and bytes of ``arrays``, in order (hex string)."""
    import numpy as np

    digest = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def measure_matmul_peak(dtype, sizes=(2048, 4096), repeats=(10, 3)):
    """Best GFLOP/s of large square NumPy and SciPy-BLAS matrix products.

    ``2 * n**3`` FLOPs per product; one untimed product per size first. The peak is the
    best single timing over sizes and libraries (NumPy's ``matmul`` and SciPy's
    ``?gemm``, which is the BLAS Numba calls); medians are recorded too.
    """
    import numpy as np
    import scipy.linalg.blas as blas

    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    rng = np.random.default_rng(0)
    record = {}
    for n, count in zip(sizes, repeats):
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        a_f, b_f = np.asfortranarray(a), np.asfortranarray(b)
        for library, product in (("numpy", lambda: a @ b),
                                 ("scipy_blas", lambda: gemm(1.0, a_f, b_f))):
            product()
            times = []
            for _ in range(count):
                start = time.perf_counter()
                product()
                times.append(time.perf_counter() - start)
            flops = 2.0 * n ** 3
            record[f"{library}_{n}"] = {"best_gflops": flops / min(times) / 1e9,
                                        "median_gflops": flops / statistics.median(times)
                                        / 1e9}
    best = max(record.items(), key=lambda item: item[1]["best_gflops"])
    return {"peak_gflops": best[1]["best_gflops"], "peak_from": best[0], "detail": record}


def _products_kernels():
    """Compile (on first use) the nopython loops that do a workload's matrix products."""
    import numpy as np
    from numba import njit

    @njit(nogil=True)
    def training_products(batch_rows, acts, deltas, weights, grads):
        # One training step per entry of batch_rows: the forward products, then per
        # layer from the top the weight-gradient product and (but for the first layer)
        # the product that carries the error terms down, as backpropagation does.
        n_layers = len(weights)
        for rows in batch_rows:
            for l in range(n_layers):
                np.dot(acts[l][:rows], weights[l], acts[l + 1][:rows])
            for l in range(n_layers - 1, -1, -1):
                np.dot(acts[l][:rows].T, deltas[l + 1][:rows], grads[l])
                if l > 0:
                    np.dot(deltas[l + 1][:rows], weights[l].T, deltas[l][:rows])

    @njit(nogil=True)
    def prediction_products(acts, weights):
        for l in range(len(weights)):
            np.dot(acts[l], weights[l], acts[l + 1])

    return training_products, prediction_products


def measure_products(workload, dtype, repeats, data_dir):
    """Time the matrix products of one run of ``workload``, and nothing else.

    The same products as the training (or prediction) run, of the same shapes and in the
    same order: per step, the forward products, the weight-gradient products and the
    products of the delta recursion, each as one whole-matrix call of the BLAS that
    Numba calls (with the library's own threads, pinned like the peers'), from one
    compiled loop, into preallocated arrays, on the workload's own data and initial
    weights. No activation, loss, gather, shuffle or update is done. This is what the
    BLAS itself does on the workload's shapes: a reference for the targets of the
    workloads that fastbp runs through BLAS (W2-W5; W1's network is too small for BLAS).
    It is not a strict lower bound: fastbp's own split of the products into
    single-threaded tiles can be faster on some shapes. The first call (compilation
    included) is not part of the median.

    Returns
    -------
    dict
        ``times_s``, ``median_s``, ``first_call_s``, ``n_products`` and ``flops`` (as
        ``workloads.training_flops`` / ``prediction_flops`` count them).
    """
    import numpy as np
    from numba import typed

    from bench import workloads

    X, _, _, weights, _ = workloads.load_inputs(workload, dtype, data_dir)
    training_products, prediction_products = _products_kernels()
    sizes = workload.layer_sizes
    n_rows = X.shape[0]
    w_list = typed.List([np.ascontiguousarray(w) for w in weights])
    if workload.task == "predict":
        acts = typed.List([np.ascontiguousarray(X)] +
                          [np.zeros((n_rows, n), dtype) for n in sizes[1:]])

        def run():
            prediction_products(acts, w_list)
        n_products = len(weights)
        flops = workloads.prediction_flops(workload)
    else:
        batch = min(workload.batch_size or n_rows, n_rows)
        per_epoch = [min(batch, n_rows - start) for start in range(0, n_rows, batch)]
        batch_rows = np.array(per_epoch * workload.epochs, dtype=np.int64)
        rng = np.random.default_rng(0)
        # Values of the size backpropagation sees; a step's outputs never feed the next.
        acts = typed.List([np.ascontiguousarray(X[:batch])] +
                          [np.zeros((batch, n), dtype) for n in sizes[1:]])
        deltas = typed.List([rng.uniform(-0.1, 0.1, (batch, n)).astype(dtype)
                             for n in sizes])
        grads = typed.List([np.zeros_like(w) for w in w_list])

        def run():
            training_products(batch_rows, acts, deltas, w_list, grads)
        n_products = len(batch_rows) * (3 * len(weights) - 1)
        flops = workloads.training_flops(workload)
    start = time.perf_counter()
    run()
    first_call = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"first_call_s": first_call, "times_s": times,
            "median_s": statistics.median(times), "n_products": n_products,
            "flops": flops}


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", choices=PEERS)
    parser.add_argument("--peak", action="store_true",
                        help="measure the matrix-multiply peak instead of a peer")
    parser.add_argument("--products", action="store_true",
                        help="time only the workload's matrix products (a lower bound)")
    parser.add_argument("--workload", default="W3")
    parser.add_argument("--size", default="full", choices=("full", "asv", "quick"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=None, help="directory written by compare_peers")
    parser.add_argument("--out", default=None, help="JSON file to write (default: stdout)")
    args = parser.parse_args(argv)
    if sum((args.peak, args.products, args.peer is not None)) != 1:
        parser.error("give one of --peer NAME, --peak and --products")
    if args.threads < 1:
        parser.error(f"--threads is {args.threads}; it must be at least 1")
    if args.repeats < 1:
        parser.error(f"--repeats is {args.repeats}; it must be at least 1")
    return args


def main(argv=None):
    """Entry point: pin threads, import, measure, write JSON. Exit 3 if the peer is missing."""
    args = _parse_args(argv)
    pinned = pin_threads(args.threads)  # before NumPy or any peer is imported
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # the work tree's bench/ and fastbp/
    record = {"dtype": args.dtype, "threads": args.threads, "pinning": pinned}
    exit_code = 0
    if args.peak:
        record.update(kind="matmul_peak", status="ok", **measure_matmul_peak(args.dtype))
    elif args.products:
        from bench.workloads import get_workload

        workload = get_workload(args.workload, args.size)
        record.update(kind="products", workload=workload.name, size=args.size,
                      repeats=args.repeats, status="ok",
                      **measure_products(workload, args.dtype, args.repeats, args.data))
    else:
        import importlib.util

        from bench.workloads import get_workload

        workload = get_workload(args.workload, args.size)
        record.update(kind="peer", peer=args.peer, workload=workload.name, size=args.size,
                      repeats=args.repeats)
        if importlib.util.find_spec(_IMPORT_NAMES[args.peer]) is None:
            record.update(status="skipped",
                          message=f"{_IMPORT_NAMES[args.peer]} is not installed")
            exit_code = SKIPPED_EXIT_CODE
        else:
            try:
                record.update(status="ok", **measure_peer(
                    args.peer, workload, args.dtype, args.threads, args.repeats,
                    args.data))
            except Exception as error:  # reported to the parent, which goes on
                record.update(status="error", message=f"{type(error).__name__}: {error}",
                              traceback=traceback.format_exc())
                exit_code = 1
    text = json.dumps(record, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
