"""asv benchmarks of fastbp on the standard workloads W1..W5.

The workloads (data, layer sizes, hyper-parameters, initial weights) come from
``bench/workloads.py``, the module the peer runner uses too. Sizes are the standard
ones except W4, which trains on its first ``workloads.ASV_W4_ROWS`` rows (32 batches,
about 1/7 of an epoch) so that a full asv run stays affordable; the peer runner
times the whole epoch.

Classes, one concern each:

* ``W1`` .. ``W5`` -- ``time_fit`` (``time_predict`` for W5): steady state, per dtype
  and thread count. ``setup`` builds the network from the shared initial weights and
  makes one first call, so compilation and first-touch costs are excluded.
* ``Products`` -- the matrix products of W3-W5's shapes on one thread: fastbp's
  ``gemm_rm`` (its register tiles where ``takes_register_tiles`` sends the shape, the
  BLAS otherwise) against ``numpy.matmul`` on one BLAS thread, as times and as
  ``track_gflops``.
* ``Quality`` -- ``track_loss`` / ``track_accuracy`` after one fit from the initial
  weights: a speed-up that changes what is learnt shows here.
* ``SpeedupOverReference`` -- ``track_speedup``: median time of
  ``fastbp.reference.ReferenceNetwork`` over median time of ``fastbp.Network``,
  both measured in the same process with the same thread count.
* ``PeakMemory`` -- ``peakmem_fit_W3`` (and the reference's, for scale). asv reports
  the peak RSS of the whole benchmark process: imports, W3's data (60,000 x 784,
  188 MB in float32) and the fit, compilation included when Numba's cache is cold.
* ``FitMemory`` -- ``track_fit_added_mb``: what one W3 fit adds to the peak RSS,
  compilation excluded (Linux only).
* ``ColdStartWarmCache``, ``ColdStartEmptyCache`` -- ``timeraw_import_and_first_fit``:
  ``import fastbp`` plus the first ``fit`` in a fresh interpreter, with Numba's on-disk
  cache filled beforehand, or empty (everything compiles).

Thread counts: ``n_threads=`` for fastbp (its thread team); the BLAS is
limited with threadpoolctl for the NumPy reference. Thread pools are started only in
``setup`` (after asv's fork), never at import.
"""
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from . import workloads

_REPO_ROOT = Path(__file__).resolve().parents[1]
try:
    import fastbp
except ImportError:
    # ``asv run --python=same`` in a checkout where fastbp is not installed: measure this
    # work tree. Appended, so that an installed fastbp (asv's own builds) always wins.
    sys.path.append(str(_REPO_ROOT))
    import fastbp


DTYPES = list(workloads.DTYPES)
THREADS = [1, 2]
_TIMEOUT = 600  # first calls may compile (several seconds each with an empty cache)


def _check_threads(threads):
    """Skip (asv's NotImplementedError) a thread count this machine cannot run."""
    import numba

    if threads > numba.config.NUMBA_NUM_THREADS:
        raise NotImplementedError(f"needs {threads} threads; Numba has "
                                  f"{numba.config.NUMBA_NUM_THREADS}")


def _pin_threads(threads):
    """Set the BLAS's thread count (the reference's products); returns the limiter to
    undo. fastbp takes its count from ``n_threads=``."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def _fastbp_network(workload, weights, biases, dtype, threads):
    return fastbp.Network.from_weights(
        [w.copy() for w in weights], [b.copy() for b in biases], dtype=np.dtype(dtype),
        n_threads=threads, **workload.network_kwargs())


def _reference_network(workload, weights, biases, dtype):
    from fastbp.reference import ReferenceNetwork

    return ReferenceNetwork.from_weights(
        [w.copy() for w in weights], [b.copy() for b in biases], dtype=np.dtype(dtype),
        **workload.network_kwargs())


def _run(net, workload, X, Y):
    if workload.task == "predict":
        return net.predict(X)
    return net.fit(X, Y, **workload.fit_kwargs())


def _median_time(make, call, repeats):
    """Median of ``repeats`` timed ``call(make())`` after one untimed warm-up."""
    call(make())
    times = []
    for _ in range(repeats):
        subject = make()
        start = time.perf_counter()
        call(subject)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _WorkloadTime:
    """Steady-state time of one workload, per dtype and thread count."""

    workload_name = None
    params = [DTYPES, THREADS]
    param_names = ["dtype", "threads"]
    timeout = _TIMEOUT

    def setup(self, dtype, threads):
        _check_threads(threads)
        self.limiter = _pin_threads(threads)
        self.workload = workloads.get_workload(self.workload_name, "asv")
        self.X, self.Y, _, weights, biases = workloads.load_inputs(self.workload, dtype)
        workloads.clear_cache()  # keep one copy of the synthetic data, not two
        self.net = _fastbp_network(self.workload, weights, biases, dtype, threads)
        _run(self.net, self.workload, self.X, self.Y)  # warm-up: compile, first touch

    def teardown(self, dtype, threads):
        self.limiter.restore_original_limits()


class _FitTime(_WorkloadTime):
    def time_fit(self, dtype, threads):
        """One whole ``fit`` (every epoch). Each call goes on from the weights the
        previous one left: what a fit costs does not depend on the weights' values."""
        self.net.fit(self.X, self.Y, **self.workload.fit_kwargs())


class W1(_FitTime):
    """XOR 2-4-1, sigmoid/MSE, full batch, 10,000 iterations."""

    workload_name = "W1"


class W2(_FitTime):
    """Digits 64-64-10, relu/softmax, batch 32, 50 epochs."""

    workload_name = "W2"


class W3(_FitTime):
    """Synthetic 60,000 x 784, 784-128-10, batch 128, one epoch."""

    workload_name = "W3"


class W4(_FitTime):
    """784-1024-1024-10, batch 256, on the first 8,192 rows (a seventh of an epoch)."""

    workload_name = "W4"


class W5(_WorkloadTime):
    """Prediction of 60,000 rows with 784-128-10."""

    workload_name = "W5"

    def time_predict(self, dtype, threads):
        """Softmax probabilities of all rows."""
        self.net.predict(self.X)


# Products of the standard workloads: name -> (m, n, k, A transposed) of C = op(A) @ B.
_PRODUCTS = {  # name: m, n, k, A transposed, B transposed
    "W4 forward 256x1024x784": (256, 1024, 784, False, False),
    "W4 weight gradient 1024x1024x256": (1024, 1024, 256, True, False),
    "W4 delta 256x1024x1024": (256, 1024, 1024, False, True),
    "W3 forward 128x128x784": (128, 128, 784, False, False),
    "W5 forward 2048x128x784": (2048, 128, 784, False, False),
}


class Products:
    """One thread's matrix products of the workloads' shapes: fastbp's ``gemm_rm``
    against ``numpy.matmul`` on one BLAS thread (the same product, same operands)."""

    params = [list(_PRODUCTS), DTYPES]
    param_names = ["product", "dtype"]
    timeout = _TIMEOUT

    def setup(self, product, dtype):
        from fastbp._blas import gemm_rm

        self.limiter = _pin_threads(1)
        m, n, k, trans_a, trans_b = _PRODUCTS[product]
        rng = np.random.default_rng(0)
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        c = np.zeros(m * n, dtype)
        scratch = np.zeros(2, dtype)
        self.flops = 2.0 * m * n * k
        self.op_a, self.op_b = (a.T if trans_a else a), (b.T if trans_b else b)

        def fastbp_product():
            gemm_rm(trans_a, trans_b, m, n, k, 1.0, a.ravel(), 0, a.shape[1], b.ravel(), 0,
                    b.shape[1], 0.0, c, 0, n, scratch)

        self.fastbp_product = fastbp_product
        fastbp_product()  # compile (or load) before timing
        np.testing.assert_allclose(c.reshape(m, n), self.op_a @ self.op_b, rtol=1e-3,
                                   atol=1e-3)

    def teardown(self, product, dtype):
        self.limiter.restore_original_limits()

    def time_fastbp(self, product, dtype):
        """``fastbp._blas.gemm_rm``, as the training kernels call it per tile."""
        self.fastbp_product()

    def time_numpy_matmul(self, product, dtype):
        """``numpy.matmul`` with its BLAS on one thread."""
        np.matmul(self.op_a, self.op_b)

    def track_gflops(self, product, dtype):
        """fastbp's product in GFLOP/s (median of 9 calls)."""
        times = []
        for _ in range(9):
            start = time.perf_counter()
            self.fastbp_product()
            times.append(time.perf_counter() - start)
        return self.flops / statistics.median(times) / 1e9

    track_gflops.unit = "GFLOP/s"


class Quality:
    """What one fit from the shared initial weights learns (training-set figures)."""

    params = [["W1", "W2", "W3", "W4", "W5"], DTYPES]
    param_names = ["workload", "dtype"]
    timeout = _TIMEOUT

    def setup(self, name, dtype):
        workload = workloads.get_workload(name, "asv")
        X, Y, labels, weights, biases = workloads.load_inputs(workload, dtype)
        net = _fastbp_network(workload, weights, biases, dtype, None)
        result = _run(net, workload, X, Y)
        outputs = result if workload.task == "predict" else net.predict(X)
        self.quality = workloads.evaluate(workload, outputs, Y, labels)

    def track_loss(self, name, dtype):
        """Mean training loss after the fit (W5: of the initial weights)."""
        return self.quality["loss"]

    track_loss.unit = "loss"

    def track_accuracy(self, name, dtype):
        """Training-set accuracy after the fit (W5: of the initial weights)."""
        return self.quality["accuracy"]

    track_accuracy.unit = "fraction"


class SpeedupOverReference:
    """How many times faster than the plain-NumPy reference, float32, same threads."""

    params = [["W1", "W2", "W3", "W4", "W5"], THREADS]
    param_names = ["workload", "threads"]
    timeout = _TIMEOUT
    repeats = 3

    def setup(self, name, threads):
        _check_threads(threads)
        self.limiter = _pin_threads(threads)

    def teardown(self, name, threads):
        self.limiter.restore_original_limits()

    def track_speedup(self, name, threads):
        """Reference median time / fastbp median time (3 timed runs each)."""
        workload = workloads.get_workload(name, "asv")
        X, Y, _, weights, biases = workloads.load_inputs(workload, "float32")
        fast = _median_time(
            lambda: _fastbp_network(workload, weights, biases, "float32", threads),
            lambda net: _run(net, workload, X, Y), self.repeats)
        slow = _median_time(lambda: _reference_network(workload, weights, biases, "float32"),
                            lambda net: _run(net, workload, X, Y), self.repeats)
        return slow / fast

    track_speedup.unit = "x"


class PeakMemory:
    """Peak RSS of a process that holds W3's data and fits it once.

    The data are written to files once (``setup_cache``) and read straight into their
    arrays in ``setup``, so the process never held more than one copy of ``X`` before
    the fit: what the fit adds shows above that floor (X is 188 MB in float32).
    """

    params = [DTYPES]
    param_names = ["dtype"]
    timeout = _TIMEOUT

    def setup_cache(self):
        # Runs once, in a scratch directory that ``setup`` then sees as its cwd.
        for dtype in DTYPES:
            workloads.save_inputs(workloads.get_workload("W3", "asv"), dtype, ".")

    def setup(self, dtype):
        self.workload = workloads.get_workload("W3", "asv")
        self.X, self.Y, _, self.weights, self.biases = workloads.load_inputs(
            self.workload, dtype, ".")

    def peakmem_fit_W3(self, dtype):
        """fastbp's fit of one epoch of W3."""
        net = _fastbp_network(self.workload, self.weights, self.biases, dtype, None)
        net.fit(self.X, self.Y, **self.workload.fit_kwargs())

    def peakmem_fit_W3_reference(self, dtype):
        """The NumPy reference's fit of the same epoch, for scale."""
        net = _reference_network(self.workload, self.weights, self.biases, dtype)
        net.fit(self.X, self.Y, **self.workload.fit_kwargs())

    def peakmem_data_only(self, dtype):
        """Nothing but the loaded data and the imports: the floor of the two above."""


def _vm_field_mb(field):
    """``VmRSS`` or ``VmHWM`` of this process from /proc, in MB (10**6 bytes)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    raise NotImplementedError(f"/proc/self/status has no {field}")


class FitMemory:
    """Memory that one fit of W3 adds on top of what the process already holds.

    ``setup`` makes a first fit on a few rows (compilation or cache load, whose memory is
    not the fit's); the benchmark then resets the kernel's peak-RSS mark (``5`` written to
    ``/proc/self/clear_refs``, Linux), fits one epoch of W3 and reports peak minus the
    resident size before the fit. A copy of X would add 188 MB (float32).
    """

    params = [DTYPES]
    param_names = ["dtype"]
    timeout = _TIMEOUT

    def setup(self, dtype):
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
        except OSError as error:
            raise NotImplementedError(f"cannot reset the peak RSS here: {error}")
        self.workload = workloads.get_workload("W3", "asv")
        self.X, self.Y, _, self.weights, self.biases = workloads.load_inputs(
            self.workload, dtype)
        workloads.clear_cache()
        _fastbp_network(self.workload, self.weights, self.biases, dtype, None).fit(
            self.X[:512], self.Y[:512], **self.workload.fit_kwargs())

    def track_fit_added_mb(self, dtype):
        """Peak RSS during one W3 epoch minus RSS before it, in MB."""
        net = _fastbp_network(self.workload, self.weights, self.biases, dtype, None)
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        before = _vm_field_mb("VmRSS")
        net.fit(self.X, self.Y, **self.workload.fit_kwargs())
        return _vm_field_mb("VmHWM") - before

    track_fit_added_mb.unit = "MB"


class _ColdStart:
    """``import fastbp`` and the first ``fit``, in a fresh interpreter.

    The data are made in the untimed part of the fresh process; the timed part is
    ``import fastbp``, building the network and its first ``fit``.
    """

    cache = None
    params = [["W1", "W3"]]
    param_names = ["workload"]
    number = 1
    repeat = (1, 3, 60.0)
    rounds = 1
    timeout = _TIMEOUT

    def _code(self, name):
        setup = f"""
            import atexit, os, shutil, sys, tempfile
            if {self.cache == "empty"!r}:
                cache_dir = tempfile.mkdtemp(prefix="fastbp-cold-cache-")
                atexit.register(shutil.rmtree, cache_dir, True)
                os.environ["NUMBA_CACHE_DIR"] = cache_dir  # read when numba is imported
            sys.path.append({str(_REPO_ROOT)!r})  # bench/, and fastbp if not installed
            import numpy as np
            from bench import workloads
            workload = workloads.get_workload({name!r}, "asv")
            X, Y, labels, weights, biases = workloads.load_inputs(workload, "float32")
        """
        stmt = """
            import fastbp
            net = fastbp.Network.from_weights(weights, biases, dtype=np.float32,
                                              **workload.network_kwargs())
            net.fit(X, Y, **workload.fit_kwargs())
        """
        return textwrap.dedent(stmt), textwrap.dedent(setup)

    def timeraw_import_and_first_fit(self, name):
        """Seconds from ``import fastbp`` to the end of the first fit."""
        return self._code(name)


class ColdStartWarmCache(_ColdStart):
    """First fit of a fresh process whose kernels are in Numba's on-disk cache."""

    cache = "warm"

    def setup(self, name):
        # One untimed run fills the cache (a no-op when it is already filled).
        stmt, setup = self._code(name)
        subprocess.run([sys.executable, "-c", setup + stmt], check=True,
                       env=dict(os.environ), capture_output=True)


class ColdStartEmptyCache(_ColdStart):
    """First fit of a fresh process with ``NUMBA_CACHE_DIR`` a new, empty directory:
    every kernel the fit needs is compiled (and written to that directory)."""

    cache = "empty"
