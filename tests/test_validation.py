"""Bad input gets a ValueError/TypeError that names the problem and leaves the network as it
was."""
import threading

import numpy as np
import pytest

import fastbp._engine
from fastbp import Network
from fastbp._engine import PREDICT_BLOCK_ROWS


@pytest.fixture
def net():
    return Network([3, 4, 2], random_state=0)


X_OK = np.zeros((5, 3))
Y_OK = np.zeros((5, 2))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(layer_sizes=[3]), ValueError, "at least an input and an output"),
    (dict(layer_sizes=5), TypeError, "sequence of ints"),
    (dict(layer_sizes=[3, 0, 2]), ValueError, r"layer_sizes\[1\] must be >= 1"),
    (dict(layer_sizes=[3, 2.5, 2]), TypeError, r"layer_sizes\[1\] must be an int"),
    (dict(hidden_activation="swish"), ValueError, "hidden_activation must be one of"),
    (dict(hidden_activation="softmax"), ValueError, "softmax can only be the output"),
    (dict(output_activation="gelu"), ValueError, "output_activation must be one of"),
    (dict(loss="hinge"), ValueError, "loss must be one of"),
    (dict(output_activation="softmax", loss="mse"), ValueError, "requires loss='cross_entropy'"),
    (dict(loss="cross_entropy"), ValueError, "requires output_activation"),
    (dict(loss="binary_cross_entropy", output_activation="tanh"), ValueError,
     "requires output_activation"),
    (dict(dtype=np.int32), TypeError, "dtype must be numpy.float32 or numpy.float64"),
    (dict(dtype="float16"), TypeError, "dtype must be"),
    (dict(init="ones"), ValueError, "init must be one of"),
    (dict(n_threads=0), ValueError, "n_threads must be >= 1"),
    (dict(random_state=-1), ValueError, "random_state must be None, a non-negative int"),
    (dict(random_state="seed"), TypeError, "random_state must be None, a non-negative int"),
    (dict(random_state=1.5), TypeError, "random_state must be"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    args = dict(layer_sizes=[3, 4, 2])
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Network(**args)


@pytest.mark.parametrize("X,Y,error,match", [
    (np.zeros((5, 4)), Y_OK, ValueError, r"X has 4 columns, but the network expects 3"),
    (np.zeros(3), Y_OK, ValueError, "X must be 2-dimensional"),
    (np.zeros((0, 3)), np.zeros((0, 2)), ValueError, "X is empty"),
    (X_OK, np.zeros((4, 2)), ValueError, "Y has 4 rows but X has 5"),
    (X_OK, np.zeros((5, 3)), ValueError, "Y has 3 columns"),
    (X_OK, np.zeros(5), ValueError, "Y must be 2-dimensional"),
    (np.full((5, 3), np.nan), Y_OK, ValueError, "X contains NaN or infinity"),
    (X_OK, np.full((5, 2), np.inf), ValueError, "Y contains NaN or infinity"),
    (np.array([["a", "b", "c"]] * 5), Y_OK, TypeError, "X must hold numbers"),
    (np.zeros((5, 3), complex), Y_OK, TypeError, "X must be real"),
    ([[1, 2, 3], [1, 2]], Y_OK, ValueError, "X could not be converted"),
])
def test_bad_data_for_fit_loss_and_gradients(net, X, Y, error, match):
    for call in (net.fit, net.loss, net.gradients):
        with pytest.raises(error, match=match):
            call(X, Y)


def test_bad_data_for_predict(net):
    with pytest.raises(ValueError, match="X has 2 columns"):
        net.predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="X must be 2-dimensional"):
        net.predict(np.zeros(3))


# predict checks finiteness inside the compiled call, block by block (PREDICT_BLOCK_ROWS
# rows), on each path: a bad value in any block, first or last row, must still raise.
@pytest.mark.parametrize("path", ["fused", "serial tiles", "threaded tiles"])
@pytest.mark.parametrize("row,bad", [(0, np.nan), (PREDICT_BLOCK_ROWS - 1, np.inf),
                                     (PREDICT_BLOCK_ROWS, -np.inf),
                                     (2 * PREDICT_BLOCK_ROWS + 36, np.nan)])
def test_predict_rejects_non_finite_rows_in_any_block(path, row, bad):
    net = Network([40, 300, 10], random_state=0, n_threads=2)
    engine = net._engine
    engine.fused = path == "fused"
    engine._parallel = lambda rows: path == "threaded tiles"
    X = np.random.default_rng(0).standard_normal((2 * PREDICT_BLOCK_ROWS + 37, 40))
    before = net.predict(X)
    X_bad = X.copy()
    X_bad[row, 39 if row % 2 else 0] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.predict(X_bad)
    np.testing.assert_array_equal(net.predict(X), before)  # the network is unchanged


def _network_on(path, layer_sizes, **kwargs):
    net = Network(layer_sizes, random_state=0, n_threads=2, **kwargs)
    net._engine.fused = path == "fused"
    net._engine._parallel = lambda rows: path == "threaded tiles"
    return net


# The tiled paths check X through the first layer's sums X @ W: every sum of a row holding
# NaN or infinity is NaN or infinite, even through a zero weight (inf * 0 is NaN), and in a
# network without hidden layers, where the first layer is the output layer. The products
# of [300, 256, 10] are large enough for the register tiles (on CPUs that have them), the
# others' for the BLAS.
@pytest.mark.parametrize("path", ["fused", "serial tiles", "threaded tiles"])
@pytest.mark.parametrize("layer_sizes", [[40, 300, 10], [40, 10], [300, 256, 10]])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_found_through_zero_weights(path, layer_sizes, bad):
    net = _network_on(path, layer_sizes)
    net.weights[0][7] = 0.0  # input 7 reaches no unit
    rng = np.random.default_rng(2)
    X = rng.standard_normal((1500, layer_sizes[0]))
    Y = rng.standard_normal((1500, 10))
    X[1100, 7] = bad
    weights = [w.copy() for w in net.weights]
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.predict(X)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(X, Y, epochs=1, batch_size=200)
    for w, w0 in zip(net.weights, weights):
        np.testing.assert_array_equal(w, w0)


# A finite X whose sums overflow is not bad input: predict returns (the outputs are then
# not finite) and fit reports divergence, as the arithmetic does on every path.
@pytest.mark.parametrize("path", ["fused", "serial tiles", "threaded tiles"])
def test_overflowing_sums_of_finite_input_are_not_reported_as_bad_input(path):
    net = _network_on(path, [40, 300, 10], hidden_activation="relu")
    net.weights[0][:] = np.abs(net.weights[0]) + 1.0  # 40 terms of over 1e308: inf
    X = np.random.default_rng(3).standard_normal((1500, 40))
    X[1100, :] = 1e308
    out = net.predict(X)
    assert np.isfinite(out[:1100]).all() and not np.isfinite(out[1100]).all()
    with pytest.raises(fastbp.TrainingDiverged):
        net.fit(X, np.zeros((1500, 10)), epochs=1, batch_size=200)


# fit, loss and gradients check X inside the compiled calls too, as they read each batch:
# a bad row anywhere (later block, last row, mid-batch) raises, and a failed fit leaves
# the parameters and the shuffling stream as they were.
@pytest.mark.parametrize("path", ["fused", "serial tiles", "threaded tiles"])
@pytest.mark.parametrize("row,bad", [(0, np.nan), (1500, np.inf), (2499, -np.inf)])
def test_fit_loss_and_gradients_reject_non_finite_rows(path, row, bad):
    def network():
        net = Network([40, 300, 10], random_state=0, n_threads=2)
        net._engine.fused = path == "fused"
        net._engine._parallel = lambda rows: path == "threaded tiles"
        return net

    rng = np.random.default_rng(1)
    X = rng.standard_normal((2500, 40))
    Y = rng.standard_normal((2500, 10))
    X_bad = X.copy()
    X_bad[row, 39 if row % 2 else 0] = bad
    net = network()
    net.fit(X, Y, epochs=1, batch_size=300, shuffle=True)  # optimizer state, stream moved
    weights = [w.copy() for w in net.weights]
    for call in (net.loss, net.gradients):
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            call(X_bad, Y)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(X_bad, Y, epochs=3, batch_size=300, shuffle=True)
    assert len(net.loss_curve_) == 1
    for w, w0 in zip(net.weights, weights):
        np.testing.assert_array_equal(w, w0)
    # The same next fit as a twin network that never saw the bad data.
    twin = network()
    twin.fit(X, Y, epochs=1, batch_size=300, shuffle=True)
    net.fit(X, Y, epochs=2, batch_size=300, shuffle=True)
    twin.fit(X, Y, epochs=2, batch_size=300, shuffle=True)
    for w, w_twin in zip(net.weights, twin.weights):
        np.testing.assert_array_equal(w, w_twin)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(learning_rate=0), ValueError, "learning_rate must be in"),
    (dict(learning_rate=-0.1), ValueError, "learning_rate must be in"),
    (dict(learning_rate=np.nan), ValueError, "learning_rate must be in"),
    (dict(learning_rate="fast"), TypeError, "learning_rate must be a real number"),
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(epochs=2.0), TypeError, "epochs must be an int"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=True), TypeError, "batch_size must be an int"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of"),
    (dict(momentum=1.0), ValueError, "momentum must be in"),
    (dict(beta_2=1.5), ValueError, "beta_2 must be in"),
    (dict(epsilon=0.0), ValueError, "epsilon must be in"),
    (dict(l2=-1.0), ValueError, "l2 must be in"),
    (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
    (dict(sample_weight=np.ones(4)), ValueError, r"sample_weight must have shape \(5,\)"),
    (dict(sample_weight=-np.ones(5)), ValueError, "sample_weight must be finite and >= 0"),
    (dict(sample_weight=np.zeros(5)), ValueError, "must not be all zero"),
    (dict(sample_weight=["a"] * 5), TypeError, "sample_weight must hold numbers"),
    (dict(sample_weight=np.ones(5, complex)), TypeError, "sample_weight must be real"),
    (dict(random_state=-1), ValueError, "random_state must be None, a non-negative int"),
    (dict(random_state="seed"), TypeError, "random_state must be"),
])
def test_bad_fit_arguments_leave_the_network_untouched(net, kwargs, error, match):
    before = [w.copy() for w in net.weights]
    with pytest.raises(error, match=match):
        net.fit(X_OK, Y_OK, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))
    assert net.loss_curve_ == []


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["weights", "biases"])
def test_fit_from_non_finite_parameters_names_them_not_the_learning_rate(net, where, bad):
    getattr(net, where)[-1][0] = bad
    before = net._engine.theta.copy()
    with pytest.raises(ValueError, match="weights or biases contain NaN or infinity"):
        net.fit(X_OK, Y_OK)
    np.testing.assert_array_equal(net._engine.theta, before)
    assert net.loss_curve_ == []
    getattr(net, where)[-1][0] = 0.0  # repaired, the network trains
    net.fit(X_OK, Y_OK)
    assert len(net.loss_curve_) == 1


@pytest.mark.parametrize("loss,output,Y,match", [
    ("cross_entropy", "softmax", -np.ones((5, 2)), "Y must be >= 0"),
    ("binary_cross_entropy", "sigmoid", np.full((5, 2), 2.0), r"Y must lie in \[0, 1\]"),
    ("poisson", "exp", -np.ones((5, 2)), "Y must be >= 0"),
])
def test_targets_outside_the_loss_domain(loss, output, Y, match):
    net = Network([3, 2], output_activation=output, loss=loss)
    with pytest.raises(ValueError, match=match):
        net.fit(X_OK, Y)


@pytest.mark.parametrize("weights,biases,error,match", [
    ([np.zeros((3, 4))], [np.zeros(3)], ValueError, r"biases\[0\] must have shape \(4,\)"),
    ([np.zeros((3, 4)), np.zeros((5, 2))], [np.zeros(4), np.zeros(2)], ValueError,
     "layers must chain"),
    ([np.zeros(3)], [np.zeros(3)], ValueError, r"weights\[0\] must be 2-dimensional"),
    ([np.zeros((3, 4))], [], ValueError, "equal length"),
    (np.zeros((3, 4)), [np.zeros(4)], TypeError, "lists of arrays"),
    ([np.full((3, 4), np.nan)], [np.zeros(4)], ValueError, "NaN or infinity"),
])
def test_bad_from_weights(weights, biases, error, match):
    with pytest.raises(error, match=match):
        Network.from_weights(weights, biases)


def test_from_weights_names_a_bad_random_state():
    with pytest.raises(ValueError, match="random_state must be None, a non-negative int"):
        Network.from_weights([np.zeros((3, 4))], [np.zeros(4)], random_state=-1)


def test_inputs_are_converted_once_to_the_network_dtype():
    net = Network([3, 2], dtype=np.float32, random_state=0)
    out = net.predict([[1, 2, 3]])  # a list of ints is fine
    assert out.dtype == np.float32 and out.shape == (1, 2)
    X = np.asfortranarray(np.random.default_rng(0).random((6, 3)))
    np.testing.assert_allclose(net.predict(X), net.predict(np.ascontiguousarray(X)))


def test_layer_sizes_beyond_memory_raise_memory_error_at_once(monkeypatch):
    # Without the check, building the optimizer's chunk table for 6e12 parameters filled
    # the memory until the operating system killed the process.
    monkeypatch.setattr(fastbp._engine, "physical_memory", lambda: 16 * 2**30)
    with pytest.raises(MemoryError, match=r"layer_sizes \[3, 1000000000000, 2\] give "
                                          r"6,000,000,000,002 parameters.*16.0 GiB"):
        Network([3, 10**12, 2])


def test_an_optimizer_beyond_memory_leaves_the_network_as_it_was(monkeypatch, rng):
    X, Y = rng.random((40, 3)), rng.random((40, 2))
    net, twin = Network([3, 4, 2], random_state=0), Network([3, 4, 2], random_state=0)
    n_bytes = 8 * net._engine.n_params
    # Room for plain SGD's three copies of the parameters, not for Adam's seven.
    monkeypatch.setattr(fastbp._engine, "physical_memory", lambda: 4 * n_bytes)
    with pytest.raises(MemoryError, match="with optimizer 'adam'"):
        net.fit(X, Y, optimizer="adam", random_state=5)
    assert net.loss_curve_ == []
    # Same parameters, same shuffling stream: training goes on as if nothing happened.
    for a in (net, twin):
        a.fit(X, Y, epochs=2, batch_size=8)
    for w, w_twin in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_array_equal(w, w_twin)


@pytest.mark.parametrize("failure", ["epochs", "set-up"])
def test_memory_errors_before_training_leave_the_network_as_it_was(monkeypatch, rng, failure):
    # Every epoch's loss is kept: 10**12 epochs cannot be asked for, and fit says so
    # before any step. That error, or one in the set-up before the compiled calls, must
    # reach the caller as it is (not a bookkeeping error that hides it), and the previous
    # fit's epochs must not be reported again.
    X, Y = rng.random((40, 3)), rng.random((40, 2))
    net, twin = Network([3, 4, 2], random_state=0), Network([3, 4, 2], random_state=0)
    for a in (net, twin):
        a.fit(X, Y, epochs=2, batch_size=8)
    if failure == "epochs":
        epochs, match = 10**12, r"epochs=1,000,000,000,000: .* ask for fewer epochs"
    else:
        def no_room(*args, **kwargs):
            raise MemoryError("no room in the set-up")

        monkeypatch.setattr(fastbp._engine.Engine, "_paths", no_room)
        epochs, match = 3, "no room in the set-up"
    with pytest.raises(MemoryError, match=match):
        net.fit(X, Y, epochs=epochs, batch_size=8, random_state=5)  # a new stream too
    monkeypatch.undo()
    assert net.loss_curve_ == twin.loss_curve_
    for a in (net, twin):
        a.fit(X, Y, epochs=1, batch_size=8)
    assert net.loss_curve_ == twin.loss_curve_
    for w, w_twin in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_array_equal(w, w_twin)


def test_a_first_fit_beyond_memory_raises_memory_error(rng):
    net = Network([3, 4, 2], random_state=0)  # never trained: no epoch count to fall back on
    with pytest.raises(MemoryError, match="ask for fewer epochs"):
        net.fit(rng.random((5, 3)), rng.random((5, 2)), epochs=10**12)
    assert net.loss_curve_ == []


def test_work_buffers_beyond_memory_leave_the_network_as_it_was(monkeypatch, rng):
    # fit allocates the work buffers of a batch size it has not seen. Failing there must
    # report no epochs done and release the network for the next call, from any thread.
    X, Y = rng.random((40, 3)), rng.random((40, 2))
    net, twin = Network([3, 4, 2], random_state=0), Network([3, 4, 2], random_state=0)
    for a in (net, twin):
        a.fit(X, Y, epochs=2, batch_size=8)

    def no_room(*args, **kwargs):
        raise MemoryError("no room for the work buffers")

    monkeypatch.setattr(fastbp._engine, "_Workspace", no_room)
    with pytest.raises(MemoryError, match="work buffers"):
        net.fit(X, Y, epochs=3, batch_size=16)
    monkeypatch.undo()
    assert len(net.loss_curve_) == 2
    free = []

    def try_lock():
        taken = net._engine.lock.acquire(blocking=False)
        if taken:
            net._engine.lock.release()
        free.append(taken)

    other = threading.Thread(target=try_lock)
    other.start()
    other.join()
    assert free == [True]
    for a in (net, twin):
        a.fit(X, Y, epochs=2, batch_size=16)
    assert net.loss_curve_ == twin.loss_curve_
    for w, w_twin in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_array_equal(w, w_twin)


def test_values_beyond_float32_are_named_not_taken_for_infinities():
    net = Network([3, 4, 2], dtype=np.float32, random_state=0)
    before = [w.copy() for w in net.weights]
    big = np.array([[1e39, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"X holds values beyond the range of float32"):
        net.predict(big)
    with pytest.raises(ValueError, match=r"X holds values beyond the range of float32"):
        net.fit(big, np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"Y holds values beyond the range of float32"):
        net.fit(np.zeros((1, 3)), [[1e300, 0.0]])
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))
    assert np.isfinite(net.predict(big / 1e30)).all()  # in range: fine
