"""Shared helpers for fastbp's tests."""
import threading

import numpy as np
import pytest

# Every (hidden activation, output activation, loss) combination the contract allows.
COMBINATIONS = [
    ("sigmoid", "identity", "mse"),
    ("sigmoid", "sigmoid", "mse"),
    ("tanh", "tanh", "mse"),
    ("relu", "relu", "mse"),
    ("identity", "exp", "mse"),
    ("tanh", "softmax", "cross_entropy"),
    ("relu", "softmax", "cross_entropy"),
    ("sigmoid", "sigmoid", "binary_cross_entropy"),
    ("tanh", "exp", "poisson"),
]


def errors_in_threads(work, n_threads):
    """Run ``work()`` in ``n_threads`` threads, released together; return the exceptions
    they raised (an empty list when all went well)."""
    start = threading.Barrier(n_threads)
    errors = []

    def run():
        start.wait()
        try:
            work()
        except Exception as exc:  # pragma: no cover - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def make_targets(loss, output_activation, n, n_out, rng):
    """Targets that suit the loss: one-hot rows, probabilities, counts or reals."""
    if loss == "cross_entropy":
        return np.eye(n_out)[rng.integers(0, n_out, n)]
    if loss == "binary_cross_entropy":
        return (rng.random((n, n_out)) > 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(1.5, (n, n_out)).astype(float)
    if output_activation == "sigmoid":
        return rng.random((n, n_out))
    return rng.standard_normal((n, n_out))


def random_params(sizes, rng, scale=0.5):
    """Weights and biases with entries of order ``scale``."""
    weights = [rng.standard_normal((a, b)) * scale / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.standard_normal(b) * 0.1 for b in sizes[1:]]
    return weights, biases


def max_rel_diff(a_list, b_list):
    """Largest |a - b| / max|b| over a list of array pairs (0 when identical)."""
    worst = 0.0
    for a, b in zip(a_list, b_list):
        scale = max(np.abs(b).max(), 1e-300)
        worst = max(worst, float(np.abs(np.asarray(a) - b).max() / scale))
    return worst


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
