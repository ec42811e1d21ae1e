"""How fast can W1 go at all? fastbp against hand-written floors, side by side.

W1 (XOR, 2-4-1 sigmoid/MSE, full batch of 4 rows, 10,000 steps) does about 150
floating-point operations and 20 exponentials per step, so its time is all per-step
overhead and latency, never arithmetic. The performance issue asks for 5x JAX's fused
whole-run jit on it (about 0.002 s). This script times, in one process, after a
warm-up call each:

- ``fastbp``: ``Network.fit`` with the workload's parameters (its validation and
  bookkeeping included, as the peer runner times it);
- ``runtime sizes``: the least a library can do, written by hand for a network with
  one hidden layer: loops over sizes known only at run time, float32 sigmoids through
  the C library's ``expf``, and none of the work ``fit`` does besides the step itself
  (no loss, no finiteness checks, no roll-back copies, no sample weights);
- ``fixed sizes``: the same loops with 2-4-1 compiled in, so that LLVM unrolls every
  loop: one compiled kernel per network shape, which fastbp avoids (each new shape
  would pay a compile), once with the C library's exp and once with fastbp's
  vectorisable ``poly_exp``.

All three start from the workload's initial weights; the script checks that the floors
end within ``--atol`` of fastbp's weights, so the times compare the same training.
Compile times (the first call) are printed on their own.

Run from the repository root::

    python bench/w1_floor.py                  # 21 timed runs of each, 10,000 steps
    python bench/w1_floor.py --repeats 5 --steps 1000
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    # Run as a script: make this work tree's bench/ and fastbp/ importable.
    sys.path.insert(0, str(REPO_ROOT))

import fastbp  # noqa: E402  (needs the path set above)
from bench import workloads  # noqa: E402
from fastbp._exp import poly_exp  # noqa: E402


def _sigmoid_libm(a):
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-a))


def _sigmoid_poly(a):
    e = poly_exp(-abs(a))  # never overflows
    r = np.float32(1.0) / (np.float32(1.0) + e)
    return r if a >= 0 else e * r


def make_floor(exp="libm", shape=None):
    """A compiled ``train(X, Y, W1, b1, W2, b2, lr, n_steps)``: ``n_steps`` full-batch SGD
    steps of a one-hidden-layer sigmoid/MSE network, in place, nothing else.

    ``exp``: ``"libm"`` (the C library's ``expf``) or ``"poly"`` (fastbp's ``poly_exp``).
    ``shape``: ``None`` for sizes read from the arrays at run time, or ``(rows, n_in,
    n_hidden, n_out)`` compiled in as constants.
    """
    if exp not in ("libm", "poly"):
        raise ValueError(f"exp must be 'libm' or 'poly', not {exp!r}")
    sigmoid = njit(inline="always")(_sigmoid_libm if exp == "libm" else _sigmoid_poly)
    fixed = shape is not None
    M, NI, NH, NO = shape if fixed else (0, 0, 0, 0)

    @njit(error_model="numpy")
    def train(X, Y, W1, b1, W2, b2, lr, n_steps):
        m, n_in, n_h, n_o = (M, NI, NH, NO) if fixed else (X.shape[0], X.shape[1],
                                                           W1.shape[1], W2.shape[1])
        h = np.empty((m, n_h), np.float32)
        d_h = np.empty((m, n_h), np.float32)
        g1 = np.empty((n_in, n_h), np.float32)
        gb1 = np.empty(n_h, np.float32)
        g2 = np.empty((n_h, n_o), np.float32)
        gb2 = np.empty(n_o, np.float32)
        alpha = np.float32(1.0 / m)
        for _ in range(n_steps):
            g1[:] = 0
            gb1[:] = 0
            g2[:] = 0
            gb2[:] = 0
            for r in range(m):
                for j in range(n_h):
                    a = b1[j]
                    for i in range(n_in):
                        a += X[r, i] * W1[i, j]
                    h[r, j] = sigmoid(a)
            for r in range(m):
                for j in range(n_h):
                    d_h[r, j] = 0
                for k in range(n_o):
                    a = b2[k]
                    for j in range(n_h):
                        a += h[r, j] * W2[j, k]
                    o = sigmoid(a)
                    d = (o - Y[r, k]) * o * (np.float32(1.0) - o) * alpha
                    gb2[k] += d
                    for j in range(n_h):
                        g2[j, k] += h[r, j] * d
                        d_h[r, j] += W2[j, k] * d
                for j in range(n_h):
                    dj = d_h[r, j] * h[r, j] * (np.float32(1.0) - h[r, j])
                    gb1[j] += dj
                    for i in range(n_in):
                        g1[i, j] += X[r, i] * dj
            for i in range(n_in):
                for j in range(n_h):
                    W1[i, j] -= lr * g1[i, j]
            for j in range(n_h):
                b1[j] -= lr * gb1[j]
                for k in range(n_o):
                    W2[j, k] -= lr * g2[j, k]
            for k in range(n_o):
                b2[k] -= lr * gb2[k]

    return train


def _timed(call):
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def measure(steps=None, repeats=21):
    """Time fastbp and the floors on W1 (``steps`` overrides its 10,000 steps); returns
    ``[(name, first-call s, median s, final parameters as one flat array)]``."""
    w = workloads.get_workload("W1", "full")
    X, Y, _ = workloads.load_data(w, "float32")
    W, B = workloads.initial_weights(w, "float32")
    steps = w.epochs if steps is None else int(steps)
    fit_kwargs = dict(w.fit_kwargs(), epochs=steps)
    lr = np.float32(w.learning_rate)

    def run_fastbp():
        net = fastbp.Network.from_weights([a.copy() for a in W], [b.copy() for b in B],
                                          dtype="float32", n_threads=1,
                                          **w.network_kwargs())
        net.fit(X, Y, **fit_kwargs)
        return net.weights, net.biases

    def floor_runner(train):
        def run():
            params = [W[0].copy(), B[0].copy(), W[1].copy(), B[1].copy()]
            train(X, Y, *params, lr, steps)
            return params[0::2], params[1::2]
        return run

    shape = (X.shape[0],) + tuple(w.layer_sizes)
    runners = [("fastbp", run_fastbp),
               ("runtime sizes, C expf", floor_runner(make_floor("libm"))),
               ("fixed sizes, C expf", floor_runner(make_floor("libm", shape))),
               ("fixed sizes, poly_exp", floor_runner(make_floor("poly", shape)))]
    results = []
    for name, run in runners:
        first = _timed(run)  # compiles (or loads fastbp's cache)
        median = float(np.median([_timed(run) for _ in range(repeats)]))
        weights, biases = run()
        flat = np.concatenate([a.ravel() for pair in zip(weights, biases) for a in pair])
        results.append((name, first, median, flat))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed runs of each (21)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: W1's 10,000)")
    parser.add_argument("--atol", type=float, default=1e-3,
                        help="largest allowed difference from fastbp's final parameters")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    results = measure(args.steps, args.repeats)
    reference = results[0][3]
    print(f"{'':24s} {'first call s':>12s} {'median s':>10s} {'fastbp/this':>11s} "
          f"{'max |param - fastbp|':>20s}")
    worst = 0.0
    for name, first, median, flat in results:
        diff = float(np.abs(flat - reference).max())
        worst = max(worst, diff)
        print(f"{name:24s} {first:12.4f} {median:10.6f} {results[0][2] / median:11.2f} "
              f"{diff:20.2e}")
    if worst > args.atol:
        print(f"a floor ended more than {args.atol} from fastbp's parameters: "
              f"it did not train the same network", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
