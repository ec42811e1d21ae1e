"""Train a network on scikit-learn's bundled handwritten digits and compare with NumPy.

Run ``python -m fastbp.demo`` (``--help`` for options). It trains a 64-64-10 relu /
softmax network by mini-batch SGD with fastbp, printing the error after every epoch,
then the test accuracy, and the time of the same training run done by the plain
NumPy reference (``fastbp.reference``) from the same initial weights.
"""
import argparse
import time

import numpy as np

from .network import Network
from .reference import ReferenceNetwork


def load_digits_split(test_fraction=0.25, seed=0):
    """Digits scaled to [0, 1], one-hot targets, split into train and test parts."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the demo uses scikit-learn's bundled digits: "
                         "pip install 'fastbp[examples]'") from None
    digits = load_digits()
    X = digits.data / 16.0
    Y = np.eye(10)[digits.target]
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(len(X) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return X[train], Y[train], X[test], Y[test]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)

    X, Y, X_test, Y_test = load_digits_split()
    dtype = np.dtype(args.dtype)
    print(f"digits: {len(X)} training rows, {len(X_test)} test rows, 64 features, 10 classes")
    net = Network([64, args.hidden, 10], hidden_activation="relu", output_activation="softmax",
                  loss="cross_entropy", dtype=dtype, init="he_normal", random_state=0)
    ref = ReferenceNetwork.from_weights(net.weights, net.biases, hidden_activation="relu",
                                        output_activation="softmax", loss="cross_entropy",
                                        dtype=dtype)
    fit_args = dict(epochs=args.epochs, learning_rate=args.learning_rate,
                    batch_size=args.batch_size, random_state=0)

    print("training with fastbp (its first use on a machine compiles the kernels, about "
          "15 s; later runs load them from Numba's cache)", flush=True)
    start = time.perf_counter()
    net.fit(X, Y, verbose=True, **fit_args)
    t_fast = time.perf_counter() - start
    print(f"fastbp: test accuracy {net.score(X_test, Y_test):.4f}, "
          f"training {t_fast:.3f} s (first call includes JIT compilation or cache loading)")

    # Time a second, identical run: steady state, compilation excluded.
    again = Network.from_weights(ref.weights, ref.biases, hidden_activation="relu",
                                 output_activation="softmax", loss="cross_entropy", dtype=dtype)
    start = time.perf_counter()
    again.fit(X, Y, **fit_args)
    t_warm = time.perf_counter() - start

    start = time.perf_counter()
    ref.fit(X, Y, **fit_args)
    t_ref = time.perf_counter() - start
    ref_acc = np.mean(ref.predict(X_test).argmax(1) == Y_test.argmax(1))
    print(f"NumPy reference: test accuracy {ref_acc:.4f}, training {t_ref:.3f} s")
    print(f"fastbp (compiled, warm) {t_warm:.3f} s: {t_ref / t_warm:.1f}x faster than the "
          f"NumPy reference on the same run; final losses fastbp {again.loss_curve_[-1]:.6f}, "
          f"reference {ref.loss_curve_[-1]:.6f}")


if __name__ == "__main__":
    main()
