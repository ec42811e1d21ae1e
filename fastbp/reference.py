"""Textbook backpropagation in plain NumPy: the oracle for fastbp's compiled kernels.

This module is deliberately simple and slow. It computes exactly what
``fastbp.Network`` promises, one obvious step at a time, with the algorithm's own
symbols:

* forward phase: ``a^k = o^(k-1) @ W^k + b^k``, ``o^k = g(a^k)``, ``o^0 = X``;
* output error terms ``delta^m = dE/da^m``: ``yhat - y`` for the canonical pairs
  (identity/mse, sigmoid/binary_cross_entropy, softmax/cross_entropy, exp/poisson),
  ``(yhat - y) * g_o'(a)`` for mse with another output activation;
* delta recursion ``delta^k = g'(a^k) * (delta^(k+1) @ W^(k+1).T)``, with ``g'`` written
  in terms of the layer's outputs;
* gradients ``dE/dW^k = o^(k-1).T @ delta^k / n`` and ``dE/db^k = sum(delta^k) / n``
  (the error of a batch is the mean of the per-sample errors);
* updates: plain gradient descent, classical momentum, Nesterov momentum, Adam.

``ReferenceNetwork`` has the same constructor, ``from_weights``, ``predict``, ``loss``,
``gradients`` and ``fit`` as :class:`fastbp.Network`, and visits the rows in the same
shuffled order for the same seed, so the two can be compared number for number.
"""
import numpy as np

from ._init import initial_parameters
from ._rng import permute_inplace_py, seed_state


def activation(name, a):
    """``g(a)`` for a whole layer (softmax row by row)."""
    if name in ("sigmoid", "logistic"):
        return 0.5 * (1.0 + np.tanh(0.5 * a))  # logistic without overflow warnings
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "exp":
        return np.exp(a)
    if name == "softmax":
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return a


def derivative(name, o):
    """``g'(a)`` expressed through the outputs ``o = g(a)`` (relu: 0 at 0)."""
    if name in ("sigmoid", "logistic"):
        return o * (1.0 - o)
    if name == "tanh":
        return 1.0 - o * o
    if name == "relu":
        return (o > 0).astype(o.dtype)
    if name == "exp":
        return o
    return np.ones_like(o)


def per_sample_loss(loss, a, yhat, y):
    """Each row's error, from the output activation sums ``a`` and outputs ``yhat``."""
    if loss == "mse":
        return 0.5 * ((yhat - y) ** 2).sum(axis=1)
    if loss == "cross_entropy":  # -sum y log softmax(a), via log-sum-exp
        amax = a.max(axis=1, keepdims=True)
        log_softmax = a - amax - np.log(np.exp(a - amax).sum(axis=1, keepdims=True))
        return -(np.where(y != 0, y * log_softmax, 0.0)).sum(axis=1)
    if loss == "binary_cross_entropy":  # -[y log p + (1-y) log(1-p)] = softplus(a) - y a
        return (np.logaddexp(0.0, a) - y * a).sum(axis=1)
    if loss == "poisson":  # half deviance y log(y/yhat) - y + yhat, log(yhat) = a
        y_log_y = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return (y_log_y - y * a - y + yhat).sum(axis=1)
    raise ValueError(f"unknown loss {loss!r}")


class ReferenceNetwork:
    """Plain NumPy twin of :class:`fastbp.Network` (same arguments and meanings)."""

    def __init__(self, layer_sizes, hidden_activation="sigmoid", output_activation="identity",
                 loss="mse", dtype=np.float64, init="glorot_uniform", random_state=None):
        rng = np.random.default_rng(random_state)
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.loss_name = loss
        self.dtype = np.dtype(dtype)
        self.weights, self.biases = initial_parameters(
            list(layer_sizes), init, hidden_activation, rng, self.dtype)
        self._rng_state = seed_state(rng)
        self.loss_curve_ = []

    @classmethod
    def from_weights(cls, weights, biases, hidden_activation="sigmoid",
                     output_activation="identity", loss="mse", dtype=None, random_state=None):
        """Network with copies of the given ``weights[k]`` ``(n_in, n_out)`` and ``biases[k]``."""
        dtype = np.dtype(dtype) if dtype is not None else np.asarray(weights[0]).dtype
        net = cls.__new__(cls)
        net.hidden_activation = hidden_activation
        net.output_activation = output_activation
        net.loss_name = loss
        net.dtype = dtype
        net.weights = [np.array(w, dtype=dtype) for w in weights]
        net.biases = [np.array(b, dtype=dtype) for b in biases]
        net._rng_state = seed_state(random_state)
        net.loss_curve_ = []
        return net

    # -- the algorithm ----------------------------------------------------------------------
    def forward(self, X):
        """Outputs of every layer (``o[0] = X``) and the output layer's activation sums."""
        o = [X]
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            a = o[-1] @ W + b
            last = k == len(self.weights) - 1
            o.append(activation(self.output_activation if last else self.hidden_activation, a))
        return o, a

    def backward(self, o, a_out, Y, sample_weight=None):
        """Mean gradients ``(dW list, db list)`` of the batch error, and the error."""
        w = np.ones(len(Y), self.dtype) if sample_weight is None else sample_weight
        n = w.sum()
        yhat = o[-1]
        if self.loss_name == "mse":
            delta = (yhat - Y) * derivative(self.output_activation, yhat)
        else:  # canonical pairs
            delta = yhat - Y
        delta = delta * w[:, None]
        loss = (per_sample_loss(self.loss_name, a_out, yhat, Y) * w).sum() / n
        dW, db = [None] * len(self.weights), [None] * len(self.weights)
        for k in range(len(self.weights) - 1, -1, -1):
            dW[k] = o[k].T @ delta / n
            db[k] = delta.sum(axis=0) / n
            if k > 0:
                delta = (delta @ self.weights[k].T) * derivative(self.hidden_activation, o[k])
        return dW, db, loss

    # -- the public contract ----------------------------------------------------------------
    def predict(self, X):
        """Network outputs for each row of ``X``."""
        return self.forward(np.asarray(X, self.dtype))[0][-1]

    def loss(self, X, Y):
        """Mean over the rows of the per-sample error."""
        o, a = self.forward(np.asarray(X, self.dtype))
        return float(per_sample_loss(self.loss_name, a, o[-1], np.asarray(Y, self.dtype)).mean())

    def gradients(self, X, Y):
        """Gradient of :meth:`loss`: ``(dW list, db list)`` shaped like the parameters."""
        o, a = self.forward(np.asarray(X, self.dtype))
        dW, db, _ = self.backward(o, a, np.asarray(Y, self.dtype))
        return dW, db

    def fit(self, X, Y, epochs=1, learning_rate=0.1, batch_size=None, optimizer="sgd",
            momentum=0.9, shuffle=True, random_state=None, beta_1=0.9, beta_2=0.999,
            epsilon=1e-8, l2=0.0, sample_weight=None):
        """Gradient descent, as :meth:`fastbp.Network.fit`. Returns ``self``."""
        X = np.asarray(X, self.dtype)
        Y = np.asarray(Y, self.dtype)
        sw = None if sample_weight is None else np.asarray(sample_weight, self.dtype)
        n = len(X)
        batch_size = n if batch_size is None else min(batch_size, n)
        if random_state is not None:
            self._rng_state = seed_state(random_state)
        params = self.weights + self.biases
        vel = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        step = 0
        for _ in range(epochs):
            order = np.arange(n)
            if shuffle:
                permute_inplace_py(order, self._rng_state)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                o, a = self.forward(X[idx])
                bw = None if sw is None else sw[idx]
                dW, db, loss = self.backward(o, a, Y[idx], bw)
                wsum = len(idx) if bw is None else bw.sum()
                sq = sum((W * W).sum() for W in self.weights)
                total += len(idx) * (loss + 0.5 * l2 * sq / wsum)
                grads = [g + l2 / wsum * W for g, W in zip(dW, self.weights)] + db
                step += 1
                for p, g, v, s in zip(params, grads, vel, m2):
                    if optimizer == "sgd":
                        p -= learning_rate * g
                    elif optimizer == "momentum":
                        v[...] = momentum * v - learning_rate * g
                        p += v
                    elif optimizer == "nesterov":
                        v[...] = momentum * v - learning_rate * g
                        p += momentum * v - learning_rate * g
                    else:  # adam
                        v[...] = beta_1 * v + (1 - beta_1) * g
                        s[...] = beta_2 * s + (1 - beta_2) * g * g
                        lr_t = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
                        p -= lr_t * v / (np.sqrt(s) + epsilon)
            self.loss_curve_.append(total / n)
        return self
