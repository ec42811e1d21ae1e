"""fastbp.Network against the NumPy reference and finite differences (float64)."""
import numpy as np
import pytest

import fastbp
from fastbp import Network
from fastbp._engine import MAX_BLOCK_ROWS, PREDICT_BLOCK_ROWS
from fastbp.reference import ReferenceNetwork

from .conftest import COMBINATIONS, make_targets, max_rel_diff, random_params
from .test_reference import finite_difference_gradients, normalised_error


# The engine picks the fused row-at-a-time path for tiny networks and the tiled path
# otherwise; the tests below force each path on the same small networks.
PATHS = ["fused", "tiled"]


def use_path(net, path):
    """Force ``net`` onto one of the engine's two compiled paths; returns ``net``."""
    if path is not None:
        net._engine.fused = path == "fused"
    return net


def twins(sizes, hidden, output, loss, rng, dtype=np.float64, path=None):
    weights, biases = random_params(sizes, rng)
    net = Network.from_weights(weights, biases, hidden, output, loss, dtype=dtype)
    ref = ReferenceNetwork.from_weights(weights, biases, hidden, output, loss, dtype=dtype)
    return use_path(net, path), ref


def test_small_networks_take_the_fused_path():
    assert Network([2, 4, 1])._engine.fused
    assert not Network([64, 64, 10])._engine.fused


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("hidden,output,loss", COMBINATIONS)
def test_predict_loss_and_gradients_match_reference(hidden, output, loss, path, rng):
    sizes = [5, 7, 6, 3]
    net, ref = twins(sizes, hidden, output, loss, rng, path=path)
    X = rng.standard_normal((23, 5))
    Y = make_targets(loss, output, 23, 3, rng)
    np.testing.assert_allclose(net.predict(X), ref.predict(X), rtol=1e-12, atol=1e-14)
    assert net.loss(X, Y) == pytest.approx(ref.loss(X, Y), rel=1e-12)
    dW, db = net.gradients(X, Y)
    rW, rb = ref.gradients(X, Y)
    assert max_rel_diff(dW + db, rW + rb) < 1e-12
    assert [g.shape for g in dW] == [w.shape for w in net.weights]
    assert [g.shape for g in db] == [b.shape for b in net.biases]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("hidden,output,loss", COMBINATIONS)
@pytest.mark.parametrize("sizes", [[3, 2], [3, 5, 2], [4, 6, 5, 3]])
def test_kernel_gradients_match_finite_differences(hidden, output, loss, sizes, path, rng):
    weights, biases = random_params(sizes, rng)
    X = rng.standard_normal((9, sizes[0]))
    if "relu" in (hidden, output):  # stay away from the kink at 0
        X = np.abs(X) + 0.5
        weights = [np.abs(w) for w in weights]
        biases = [np.abs(b) + 0.2 for b in biases]
    Y = make_targets(loss, output, 9, sizes[-1], rng)
    net = use_path(Network.from_weights(weights, biases, hidden, output, loss), path)
    dW, db = net.gradients(X, Y)
    numeric = finite_difference_gradients(net, X, Y)
    assert normalised_error(dW + db, numeric) < 1e-6


TRAINING_MODES = {"full batch": None, "mini-batch": 8, "online": 1}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", list(TRAINING_MODES))
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_fit_matches_reference_after_many_steps(mode, optimizer, path, rng):
    net, ref = twins([4, 6, 5, 2], "tanh", "identity", "mse", rng, path=path)
    X = rng.standard_normal((30, 4))
    Y = rng.standard_normal((30, 2))
    epochs = {"full batch": 300, "mini-batch": 60, "online": 10}[mode]
    kwargs = dict(epochs=epochs, learning_rate=0.01, batch_size=TRAINING_MODES[mode],
                  optimizer=optimizer, momentum=0.8, random_state=4)
    net.fit(X, Y, **kwargs)
    ref.fit(X, Y, **kwargs)
    assert max_rel_diff(net.weights + net.biases, ref.weights + ref.biases) < 1e-10
    np.testing.assert_allclose(net.loss_curve_, ref.loss_curve_, rtol=1e-10)
    assert len(net.loss_curve_) == epochs


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_threaded_path_matches_reference(optimizer, rng):
    # Large enough for the tiled, threaded path (several row and column tiles per product).
    net, ref = twins([50, 300, 260, 10], "relu", "softmax", "cross_entropy", rng)
    X = rng.standard_normal((300, 50))
    Y = make_targets("cross_entropy", "softmax", 300, 10, rng)
    kwargs = dict(epochs=2, learning_rate=0.01, batch_size=100, optimizer=optimizer,
                  random_state=1)
    assert net._engine._parallel(100) == (net._engine.n_threads != 1 and
                                          fastbp._threads.resolve_n_threads(None) > 1)
    net.fit(X, Y, **kwargs)
    ref.fit(X, Y, **kwargs)
    assert max_rel_diff(net.weights + net.biases, ref.weights + ref.biases) < 1e-10
    np.testing.assert_allclose(net.predict(X), ref.predict(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sizes", [[3, 2], [5, 7, 3], [4, 6, 5, 3], [4, 6, 5, 4, 3]])
def test_plain_sgd_step_written_by_the_products_equals_gradient_then_update(sizes, rng):
    # On the tiled path, plain SGD without L2 writes its step into the weights from the
    # weight-gradient products themselves; the gradient buffer is then never written.
    weights, biases = random_params(sizes, rng)
    net = use_path(Network.from_weights(weights, biases, "tanh", "softmax", "cross_entropy"),
                   "tiled")
    X = rng.standard_normal((20, sizes[0]))
    Y = make_targets("cross_entropy", "softmax", 20, sizes[-1], rng)
    dW, db = net.gradients(X, Y)
    net._engine.grad[:] = 7.0
    net.fit(X, Y, epochs=1, learning_rate=0.3)  # one full-batch step
    expected = [p - 0.3 * g for p, g in zip(weights + biases, dW + db)]
    assert max_rel_diff(net.weights + net.biases, expected) < 1e-14
    assert (net._engine.grad == 7.0).all()
    # Any other optimizer, or an L2 penalty, takes the gradient and then the update pass.
    net.fit(X, Y, epochs=1, learning_rate=0.3, l2=0.1)
    assert not (net._engine.grad == 7.0).all()


@pytest.mark.parametrize("path", PATHS)
def test_batches_larger_than_a_block_accumulate_exactly(path, rng):
    net, ref = twins([6, 8, 3], "sigmoid", "softmax", "cross_entropy", rng, path=path)
    n = 2 * MAX_BLOCK_ROWS + 37
    X = rng.standard_normal((n, 6))
    Y = make_targets("cross_entropy", "softmax", n, 3, rng)
    assert net.loss(X, Y) == pytest.approx(ref.loss(X, Y), rel=1e-12)
    dW, db = net.gradients(X, Y)
    rW, rb = ref.gradients(X, Y)
    assert max_rel_diff(dW + db, rW + rb) < 1e-11
    net.fit(X, Y, epochs=5, learning_rate=0.5)
    ref.fit(X, Y, epochs=5, learning_rate=0.5)
    assert max_rel_diff(net.weights + net.biases, ref.weights + ref.biases) < 1e-10


@pytest.mark.parametrize("path", PATHS)
def test_predictions_over_several_blocks_match_reference(path, rng):
    net, ref = twins([6, 8, 3], "tanh", "softmax", "cross_entropy", rng, path=path)
    X = rng.standard_normal((2 * PREDICT_BLOCK_ROWS + 37, 6))
    np.testing.assert_allclose(net.predict(X), ref.predict(X), rtol=1e-13, atol=1e-15)


def test_prediction_blocks_shrink_for_wide_networks():
    narrow = Network([784, 128, 10], dtype=np.float32)._engine
    assert narrow.predict_block_rows() == PREDICT_BLOCK_ROWS
    # float64 activations of 2058 units: 4096 rows would take 67 MB, over 64 MiB.
    assert Network([10, 2048, 10], dtype=np.float64)._engine.predict_block_rows() == \
        PREDICT_BLOCK_ROWS // 2
    assert Network([10, 100_000, 10])._engine.predict_block_rows() == MAX_BLOCK_ROWS


@pytest.mark.parametrize("path", PATHS)
def test_sample_weight_and_l2_match_reference(path, rng):
    net, ref = twins([4, 5, 3], "tanh", "softmax", "cross_entropy", rng, path=path)
    X = rng.standard_normal((40, 4))
    Y = make_targets("cross_entropy", "softmax", 40, 3, rng)
    sw = rng.random(40) * 2
    kwargs = dict(epochs=30, learning_rate=0.05, batch_size=16, optimizer="momentum",
                  l2=0.3, sample_weight=sw, random_state=2)
    net.fit(X, Y, **kwargs)
    ref.fit(X, Y, **kwargs)
    assert max_rel_diff(net.weights + net.biases, ref.weights + ref.biases) < 1e-10
    np.testing.assert_allclose(net.loss_curve_, ref.loss_curve_, rtol=1e-10)


def test_integer_sample_weights_equal_repeated_rows(rng):
    weights, biases = random_params([3, 4, 1], rng)
    X = rng.standard_normal((10, 3))
    Y = rng.standard_normal((10, 1))
    counts = rng.integers(1, 4, 10)
    a = Network.from_weights(weights, biases)
    b = Network.from_weights(weights, biases)
    a.fit(X, Y, epochs=20, learning_rate=0.1, sample_weight=counts)
    b.fit(np.repeat(X, counts, axis=0), np.repeat(Y, counts, axis=0), epochs=20,
          learning_rate=0.1)
    assert max_rel_diff(a.weights + a.biases, b.weights + b.biases) < 1e-12


@pytest.mark.parametrize("path", PATHS)
def test_float32_network_tracks_float64_reference(path, rng):
    net, ref = twins([8, 16, 4], "relu", "softmax", "cross_entropy", rng, dtype=np.float32,
                     path=path)
    X = rng.standard_normal((64, 8))
    Y = make_targets("cross_entropy", "softmax", 64, 4, rng)
    net.fit(X, Y, epochs=20, learning_rate=0.05, batch_size=16, random_state=0)
    ref.fit(X, Y, epochs=20, learning_rate=0.05, batch_size=16, random_state=0)
    assert all(w.dtype == np.float32 for w in net.weights + net.biases)
    assert net.predict(X).dtype == np.float32
    assert max_rel_diff(net.weights + net.biases, ref.weights + ref.biases) < 1e-4


def test_xor_is_learned_online_and_full_batch():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    Y = np.array([[0], [1], [1], [0]], float)
    for batch_size, epochs in [(None, 10000), (1, 3000)]:
        net = Network([2, 4, 1], output_activation="sigmoid", random_state=0)
        net.fit(X, Y, epochs=epochs, learning_rate=0.5, batch_size=batch_size)
        assert net.predict(X).round().ravel().tolist() == [0, 1, 1, 0]
        assert net.loss_curve_[-1] < 0.01 < net.loss_curve_[0]


def test_same_seed_same_weights_and_shuffle_stream(rng):
    X = rng.standard_normal((50, 3))
    Y = rng.standard_normal((50, 2))
    nets = [Network([3, 5, 2], random_state=7) for _ in range(3)]
    nets[0].fit(X, Y, epochs=3, batch_size=4)
    nets[1].fit(X, Y, epochs=3, batch_size=4)
    nets[2].fit(X, Y, epochs=3, batch_size=4, random_state=99)
    assert max_rel_diff(nets[0].weights, nets[1].weights) == 0.0
    assert max_rel_diff(nets[0].weights, nets[2].weights) > 0.0
    assert max_rel_diff(Network([3, 5, 2], random_state=1).weights,
                        Network([3, 5, 2], random_state=2).weights) > 0.0


def test_shuffle_false_visits_rows_in_order(rng):
    net, ref = twins([3, 4, 1], "sigmoid", "identity", "mse", rng)
    X = rng.standard_normal((10, 3))
    Y = rng.standard_normal((10, 1))
    net.fit(X, Y, epochs=3, batch_size=3, shuffle=False)
    ref.fit(X, Y, epochs=3, batch_size=3, shuffle=False)
    assert max_rel_diff(net.weights, ref.weights) < 1e-12


def test_from_weights_copies_and_weights_are_live_views(rng):
    weights, biases = random_params([3, 4, 2], rng)
    net = Network.from_weights(weights, biases)
    weights[0][0, 0] = 123.0
    assert net.weights[0][0, 0] != 123.0
    X = rng.standard_normal((5, 3))
    before = net.predict(X)
    net.weights[1][...] = 0.0
    net.biases[1][...] = 1.5
    np.testing.assert_array_equal(net.predict(X), 1.5)
    assert not np.array_equal(before, net.predict(X))


def test_one_dimensional_targets_for_a_single_output(rng):
    net = Network([3, 4, 1], random_state=0)
    X = rng.standard_normal((6, 3))
    y = rng.standard_normal(6)
    assert net.loss(X, y) == pytest.approx(net.loss(X, y[:, None]))


def test_score_is_accuracy_or_r2(rng):
    X = rng.standard_normal((40, 4))
    labels = (X[:, 0] > 0).astype(int)
    clf = Network([4, 8, 2], "tanh", "softmax", "cross_entropy", random_state=0)
    clf.fit(X, np.eye(2)[labels], epochs=200, learning_rate=0.5)
    assert clf.score(X, np.eye(2)[labels]) > 0.9
    reg = Network([4, 2], "identity", "identity", "mse", random_state=0)
    Y = X[:, :2] * 3 + 1
    reg.fit(X, Y, epochs=500, learning_rate=0.1)
    assert reg.score(X, Y) > 0.99


def test_predict_on_empty_rows_is_rejected_but_subsets_agree(rng):
    net = Network([3, 20, 2], random_state=0)
    X = rng.standard_normal((2000, 3))
    full = net.predict(X)
    np.testing.assert_allclose(net.predict(X[:7]), full[:7], rtol=1e-13)


def test_verbose_prints_one_line_per_epoch(capsys, rng):
    net = Network([2, 3, 1], random_state=0)
    net.fit(rng.standard_normal((8, 2)), rng.standard_normal((8, 1)), epochs=3, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3  loss ")


def test_pickled_network_predicts_and_trains_on_identically(rng):
    import pickle
    X = rng.standard_normal((64, 5))
    Y = make_targets("cross_entropy", "softmax", 64, 3, rng)
    net = Network([5, 16, 3], "relu", "softmax", "cross_entropy", random_state=0)
    net.fit(X, Y, epochs=2, batch_size=8)
    blob = pickle.dumps(net)
    assert len(blob) < 4 * net._engine.theta.nbytes + 4000  # no work buffers inside
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    net.fit(X, Y, epochs=2, batch_size=8)
    copy.fit(X, Y, epochs=2, batch_size=8)
    assert max_rel_diff(copy.weights + copy.biases, net.weights + net.biases) == 0.0
    assert copy.loss_curve_ == net.loss_curve_


def test_docstring_example_runs():
    import doctest

    import fastbp.network

    result = doctest.testmod(fastbp.network)
    assert result.attempted > 0 and result.failed == 0


def test_concurrent_predictions_on_one_network_are_exact(rng):
    from concurrent.futures import ThreadPoolExecutor
    net = Network([20, 64, 5], "relu", "softmax", "cross_entropy", random_state=0)
    inputs = [rng.standard_normal((n, 20)) for n in (7, 300, 1500, 33) * 4]
    expected = [net.predict(X) for X in inputs]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(net.predict, inputs))
    assert all(np.array_equal(a, b) for a, b in zip(results, expected))
