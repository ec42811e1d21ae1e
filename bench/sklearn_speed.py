"""fastbp's MLPClassifier against scikit-learn's, side by side in one run.

Usage (from the repository root)::

    python bench/sklearn_speed.py                   # 2 threads, 3 repeats, all cases
    python bench/sklearn_speed.py --threads 1 --repeats 5
    python bench/sklearn_speed.py --quick           # smoke run: small, one repeat

What is timed: ``MLPClassifier(random_state=0).fit(X, y)`` with scikit-learn's default
hyper-parameters (adam, one hidden layer of 100 relu units, batches of 200, up to 200
epochs with its stopping rule), once with ``sklearn.neural_network.MLPClassifier`` and once
with ``fastbp.MLPClassifier``, on

* ``digits``: scikit-learn's bundled digits, 1797 x 64, pixels scaled to [0, 1];
* ``synthetic``: 20,000 x 100 standard-normal features, 10 classes given by the arg-max of
  a random linear teacher (learnable, so the stopping rule behaves as on real data);

each in float64 and float32. Both estimators get the same data and ``random_state``, so
they do the same work: the script checks that they stop after the same number of epochs
and reports the largest relative difference of the weights.

Method: thread counts are pinned before NumPy is imported (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``); fastbp's first fit
in the process (JIT compilation or loading Numba's on-disk cache) is timed and reported
separately as the warm-up and excluded from the steady-state times; then the two
estimators alternate, ``--repeats`` times each, and the table gives the medians and the
ratio ``sklearn median / fastbp median`` (above 1: fastbp is faster). Results also go to
``bench/results/sklearn_speed.json``.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for BLAS, OpenMP and Numba (default 2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed fits per estimator and case (default 3; median reported)")
    parser.add_argument("--cases", default="digits,synthetic",
                        help="comma-separated subset of: digits, synthetic")
    parser.add_argument("--dtypes", default="float64,float32",
                        help="comma-separated subset of: float64, float32")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 synthetic rows, max_iter=20, one repeat")
    parser.add_argument("--json", default=str(REPO_ROOT / "bench" / "results" /
                                              "sklearn_speed.json"),
                        help="where to write the results ('' for nowhere)")
    return parser.parse_args(argv)


def pin_threads(n):
    """Pin every thread pool; must run before NumPy, SciPy or Numba are imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)


def make_data(case, dtype, quick):
    import numpy as np

    if case == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    elif case == "synthetic":
        n_rows = 2_000 if quick else 20_000
        rng = np.random.RandomState(20261124)
        X = rng.standard_normal((n_rows, 100))
        teacher = rng.standard_normal((100, 10))
        y = np.argmax(X @ teacher, axis=1)
    else:
        raise ValueError("unknown case %r (expected digits or synthetic)" % case)
    return np.ascontiguousarray(X, dtype=dtype), y


def timed_fit(Estimator, params, X, y):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    est = Estimator(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        elapsed = time.perf_counter() - start
    return elapsed, est


def max_relative_difference(a, b):
    import numpy as np

    return max(float(np.max(np.abs(p - q)) / np.max(np.abs(q)))
               for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)
    sys.path.insert(0, str(REPO_ROOT))

    import numba
    import numpy as np
    import sklearn
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    import fastbp
    from fastbp import MLPClassifier as FbMLPClassifier

    cases = [c for c in args.cases.split(",") if c]
    dtypes = [d for d in args.dtypes.split(",") if d]
    repeats = 1 if args.quick else args.repeats
    params = dict(random_state=0)
    if args.quick:
        params["max_iter"] = 20

    print("fastbp %s, scikit-learn %s, numpy %s, numba %s, python %s, %s"
          % (fastbp.__version__, sklearn.__version__, np.__version__, numba.__version__,
             platform.python_version(), platform.machine()))
    print("threads pinned to %d; %d timed fit(s) per estimator and case; params %s\n"
          % (args.threads, repeats, params or "defaults"))

    # Warm-up: the first fastbp fit of the process pays compilation (or the cache load)
    # for this dtype. Reported, not counted in the steady-state medians.
    warmups = {}
    for dtype in dtypes:
        X, y = make_data("digits", dtype, quick=True)
        warmups[dtype], _ = timed_fit(FbMLPClassifier, dict(random_state=0, max_iter=1),
                                      X[:200], y[:200])
        print("fastbp warm-up (first fit in process, %s): %.2f s" % (dtype, warmups[dtype]))
    print()

    rows = []
    for case in cases:
        for dtype in dtypes:
            X, y = make_data(case, dtype, args.quick)
            sk_times, fb_times = [], []
            for _ in range(repeats):  # alternate, so that drifts hit both alike
                t_sk, sk_est = timed_fit(SkMLPClassifier, params, X, y)
                t_fb, fb_est = timed_fit(FbMLPClassifier, params, X, y)
                sk_times.append(t_sk)
                fb_times.append(t_fb)
            row = dict(
                case=case, shape=list(X.shape), dtype=dtype,
                sklearn_s=statistics.median(sk_times), fastbp_s=statistics.median(fb_times),
                sklearn_runs_s=sk_times, fastbp_runs_s=fb_times,
                n_iter_sklearn=int(sk_est.n_iter_), n_iter_fastbp=int(fb_est.n_iter_),
                max_rel_weight_diff=max_relative_difference(fb_est, sk_est),
                same_predictions=bool(np.array_equal(fb_est.predict(X), sk_est.predict(X))),
            )
            row["ratio"] = row["sklearn_s"] / row["fastbp_s"]
            rows.append(row)
            print("%-10s %-12s %-8s sklearn %8.3f s  fastbp %8.3f s  ratio %6.1fx  "
                  "epochs %d/%d  max rel diff %.1e"
                  % (case, "%dx%d" % X.shape, dtype, row["sklearn_s"], row["fastbp_s"],
                     row["ratio"], row["n_iter_sklearn"], row["n_iter_fastbp"],
                     row["max_rel_weight_diff"]), flush=True)

    print("\n| case | shape | dtype | epochs | scikit-learn (s) | fastbp (s) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %dx%d | %s | %d | %.3f | %.3f | %.1fx |"
              % (r["case"], r["shape"][0], r["shape"][1], r["dtype"], r["n_iter_sklearn"],
                 r["sklearn_s"], r["fastbp_s"], r["ratio"]))

    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(dict(
            threads=args.threads, repeats=repeats, quick=args.quick, params=params,
            warmup_s=warmups, versions=dict(fastbp=fastbp.__version__,
                                            sklearn=sklearn.__version__,
                                            numpy=np.__version__, numba=numba.__version__),
            results=rows), indent=2))
        print("\nwritten: %s" % out)


if __name__ == "__main__":
    main()
