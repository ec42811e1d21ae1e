"""The NumPy reference (the oracle) checked against central finite differences."""
import numpy as np
import pytest

from fastbp.reference import ReferenceNetwork, per_sample_loss

from .conftest import COMBINATIONS, make_targets, random_params

DEPTHS = {"one layer": [3, 2], "one hidden": [3, 5, 2], "two hidden": [4, 6, 5, 3]}


def finite_difference_gradients(net, X, Y, h=1e-6):
    grads = []
    for p in net.weights + net.biases:
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = net.loss(X, Y)
            p[i] = old - h
            down = net.loss(X, Y)
            p[i] = old
            g[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def normalised_error(analytic, numeric):
    """max |a - n| / (max |n| + tiny): near-zero entries cannot dominate."""
    a = np.concatenate([g.ravel() for g in analytic])
    n = np.concatenate([g.ravel() for g in numeric])
    return np.abs(a - n).max() / (np.abs(n).max() + 1e-12)


@pytest.mark.parametrize("hidden,output,loss", COMBINATIONS)
@pytest.mark.parametrize("depth", list(DEPTHS))
def test_reference_gradients_match_finite_differences(hidden, output, loss, depth, rng):
    sizes = DEPTHS[depth]
    weights, biases = random_params(sizes, rng)
    X = rng.standard_normal((7, sizes[0]))
    if hidden == "relu" or output == "relu":
        X = np.abs(X) + 0.5  # keep the relu units away from their kink at 0
        biases = [np.abs(b) + 0.2 for b in biases]
        weights = [np.abs(w) for w in weights]
    Y = make_targets(loss, output, 7, sizes[-1], rng)
    net = ReferenceNetwork.from_weights(weights, biases, hidden, output, loss)
    dW, db = net.gradients(X, Y)
    numeric = finite_difference_gradients(net, X, Y)
    assert normalised_error(dW + db, numeric) < 1e-6


def test_per_sample_losses_worked_example():
    # Every number written out: yhat = softmax([0, log 3]) = [1/4, 3/4].
    a = np.array([[0.0, np.log(3.0)]])
    yhat = np.array([[0.25, 0.75]])
    y = np.array([[0.0, 1.0]])
    assert per_sample_loss("cross_entropy", a, yhat, y)[0] == pytest.approx(-np.log(0.75))
    assert per_sample_loss("mse", a, yhat, y)[0] == pytest.approx(0.5 * (0.25**2 + 0.25**2))
    z = np.array([[2.0]])
    p = 1 / (1 + np.exp(-2.0))
    assert per_sample_loss("binary_cross_entropy", z, np.array([[p]]), np.array([[1.0]]))[0] \
        == pytest.approx(-np.log(p))
    yhat = np.exp(z)
    assert per_sample_loss("poisson", z, yhat, np.array([[3.0]]))[0] \
        == pytest.approx(3 * np.log(3 / yhat[0, 0]) - 3 + yhat[0, 0])


def test_stable_losses_for_huge_logits():
    a = np.array([[1000.0, -1000.0]])
    yhat = np.array([[1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert per_sample_loss("cross_entropy", a, yhat, np.array([[0.0, 1.0]]))[0] \
            == pytest.approx(2000.0)
        assert per_sample_loss("binary_cross_entropy", a, yhat, np.array([[0.0, 1.0]]))[0] \
            == pytest.approx(2000.0)
