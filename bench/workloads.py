"""The standard workloads W1..W5: data, layer sizes, hyper-parameters, initial weights.

This module is the one place where the benchmark workloads are defined (see
``shared/workloads.md``). The peer runner (``bench/compare_peers.py`` and
``bench/peers/run_peer.py``) and the asv suite (``bench/benchmarks.py``) both read
their definitions from here, so a change to a workload changes every measurement.

========  ====================================================================
W1        XOR, 4 rows x 2 inputs; 2-4-1, sigmoid hidden and output, MSE;
          full batch, lr 0.5, 10,000 iterations (epochs), no shuffle
W2        scikit-learn's digits, 1797 x 64 scaled to [0, 1]; 64-64-10, relu,
          softmax + cross-entropy; batch 32, lr 0.1, 50 epochs, shuffled
W3        synthetic 60,000 x 784, 10 classes; 784-128-10, relu, softmax + CE;
          batch 128, lr 0.1, 1 epoch, shuffled
W4        the same synthetic data; 784-1024-1024-10, relu, softmax + CE;
          batch 256, lr 0.1, 1 epoch, shuffled
W5        the same synthetic data; 784-128-10 (W3's initial weights);
          prediction only (softmax probabilities) of all 60,000 rows
========  ====================================================================

All training is plain SGD (no momentum, no L2 penalty). When the number of rows is
not a multiple of the batch size, the last batch of an epoch is the smaller
remainder (fastbp's and scikit-learn's convention; the JAX peer follows it too).

The synthetic data: features are standard normal draws times ``SYNTHETIC_SCALE``
(so that a row has about the squared norm of an MNIST image scaled to [0, 1]),
labels are the arg-max of a random linear "teacher" ``X @ T``, so the task is
learnable and the final accuracy says whether a peer really trained.

Sizes. ``"full"`` is the definition above. ``"asv"`` keeps W1, W2, W3 and W5 whole
but trains W4 on the first ``ASV_W4_ROWS`` rows (32 batches, about 1/7 of an
epoch) so that the asv suite stays affordable. ``"quick"`` shrinks everything for
smoke runs of the peer runner (a few seconds per peer).
"""
import functools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

DATA_SEED = 20261124
"""Seed of the synthetic data (features and teacher)."""

SHUFFLE_SEED = 0
"""``random_state`` given to every fit that shuffles (each library shuffles its own way)."""

N_SYNTHETIC_ROWS = 60_000
N_SYNTHETIC_FEATURES = 784
N_CLASSES = 10
SYNTHETIC_SCALE = 0.35
ASV_W4_ROWS = 8192

DTYPES = ("float32", "float64")
SIZES = ("full", "asv", "quick")


@dataclass(frozen=True)
class Workload:
    """One standard workload: what data, which network, how it is trained.

    Attributes
    ----------
    name : str
        ``"W1"`` .. ``"W5"``.
    description : str
        One line for tables.
    dataset : {"xor", "digits", "synthetic"}
        Which data set (see :func:`load_data`).
    layer_sizes : tuple of int
        Units per layer, input first.
    hidden_activation, output_activation, loss : str
        fastbp's names for them.
    task : {"fit", "predict"}
        Training, or prediction of all rows with the initial weights.
    learning_rate : float
        SGD step size (no momentum, no L2).
    batch_size : int or None
        Rows per SGD step; ``None`` means the whole data set (full batch).
    epochs : int
        Passes over the data (for full batch: iterations).
    shuffle : bool
        Whether each epoch visits the rows in a new random order.
    n_rows : int or None
        Use only the first ``n_rows`` rows of the data set; ``None`` means all.
    weight_seed : int
        Seed of the initial weights (see :func:`initial_weights`).
    """

    name: str
    description: str
    dataset: str
    layer_sizes: tuple
    hidden_activation: str
    output_activation: str
    loss: str
    task: str
    learning_rate: float = 0.0
    batch_size: int = None
    epochs: int = 0
    shuffle: bool = False
    n_rows: int = None
    weight_seed: int = 0

    @property
    def is_classification(self):
        """True when the targets are one-hot classes (softmax output)."""
        return self.output_activation == "softmax"

    def network_kwargs(self):
        """Keyword arguments shared by ``fastbp.Network`` and ``ReferenceNetwork``."""
        return dict(hidden_activation=self.hidden_activation,
                    output_activation=self.output_activation, loss=self.loss)

    def fit_kwargs(self):
        """Keyword arguments of ``fit`` (fastbp and the NumPy reference)."""
        return dict(epochs=self.epochs, learning_rate=self.learning_rate,
                    batch_size=self.batch_size, optimizer="sgd", shuffle=self.shuffle,
                    random_state=SHUFFLE_SEED)


WORKLOADS = {
    "W1": Workload("W1", "XOR 2-4-1 sigmoid/MSE, full batch, 10,000 iterations", "xor",
                   (2, 4, 1), "sigmoid", "sigmoid", "mse", "fit", learning_rate=0.5,
                   batch_size=None, epochs=10_000, shuffle=False, weight_seed=1),
    "W2": Workload("W2", "digits 64-64-10 relu/softmax, batch 32, 50 epochs", "digits",
                   (64, 64, 10), "relu", "softmax", "cross_entropy", "fit",
                   learning_rate=0.1, batch_size=32, epochs=50, shuffle=True, weight_seed=2),
    "W3": Workload("W3", "synthetic 784-128-10 relu/softmax, batch 128, 1 epoch", "synthetic",
                   (784, 128, 10), "relu", "softmax", "cross_entropy", "fit",
                   learning_rate=0.1, batch_size=128, epochs=1, shuffle=True, weight_seed=3),
    "W4": Workload("W4", "synthetic 784-1024-1024-10 relu/softmax, batch 256, 1 epoch",
                   "synthetic", (784, 1024, 1024, 10), "relu", "softmax", "cross_entropy",
                   "fit", learning_rate=0.1, batch_size=256, epochs=1, shuffle=True,
                   weight_seed=4),
    # Same network and initial weights as W3 (weight_seed=3): W5 times W3's forward pass.
    "W5": Workload("W5", "synthetic 784-128-10 prediction of 60,000 rows", "synthetic",
                   (784, 128, 10), "relu", "softmax", "cross_entropy", "predict",
                   weight_seed=3),
}

_QUICK = {
    "W1": dict(epochs=1000),
    "W2": dict(epochs=5),
    "W3": dict(n_rows=6000),
    "W4": dict(n_rows=2048),
    "W5": dict(n_rows=6000),
}


def get_workload(name, size="full"):
    """Return the workload ``name`` at the given size.

    Parameters
    ----------
    name : str
        ``"W1"`` .. ``"W5"``.
    size : {"full", "asv", "quick"}
        ``"full"`` is the standard definition; ``"asv"`` trains W4 on ``ASV_W4_ROWS``
        rows only; ``"quick"`` shrinks every workload for smoke runs.

    Returns
    -------
    Workload
    """
    if name not in WORKLOADS:
        raise ValueError(f"name is {name!r}; expected one of {sorted(WORKLOADS)}")
    if size not in SIZES:
        raise ValueError(f"size is {size!r}; expected one of {SIZES}")
    workload = WORKLOADS[name]
    if size == "asv" and name == "W4":
        return replace(workload, n_rows=ASV_W4_ROWS)
    if size == "quick":
        return replace(workload, **_QUICK[name])
    return workload


@functools.lru_cache(maxsize=2)
def _synthetic_float32():
    # Generated once per process in float32; float64 runs get the same values widened.
    rng = np.random.default_rng(DATA_SEED)
    X = rng.standard_normal((N_SYNTHETIC_ROWS, N_SYNTHETIC_FEATURES), dtype=np.float32)
    X *= np.float32(SYNTHETIC_SCALE)
    teacher = rng.standard_normal((N_SYNTHETIC_FEATURES, N_CLASSES), dtype=np.float32)
    labels = np.argmax(X @ teacher, axis=1)
    return X, labels


def clear_cache():
    """Forget the synthetic data set kept in memory by :func:`load_data`."""
    _synthetic_float32.cache_clear()


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data / 16.0, digits.target


def load_data(workload, dtype="float32"):
    """Return the data of a workload.

    Parameters
    ----------
    workload : Workload
        Its ``dataset`` and ``n_rows`` select the rows.
    dtype : {"float32", "float64"}
        Floating type of ``X`` and ``Y``.

    Returns
    -------
    X : ndarray, shape (n_rows, n_inputs), C-contiguous, ``dtype``
        Inputs.
    Y : ndarray, shape (n_rows, n_outputs), ``dtype``
        Targets: one-hot rows for classification, the XOR value for W1.
    labels : ndarray of int64, shape (n_rows,)
        Class index of each row (for W1 the XOR value 0 or 1).
    """
    dtype = np.dtype(dtype)
    if workload.dataset == "xor":
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
        labels = np.array([0, 1, 1, 0], dtype=np.int64)
        Y = labels.astype(dtype).reshape(-1, 1)
        return X, Y, labels
    if workload.dataset == "digits":
        X, labels = _digits()
    elif workload.dataset == "synthetic":
        X, labels = _synthetic_float32()
    else:
        raise ValueError(f"workload.dataset is {workload.dataset!r}; "
                         "expected 'xor', 'digits' or 'synthetic'")
    n_rows = len(X) if workload.n_rows is None else workload.n_rows
    # Copies, so that no caller can change the cached data set.
    X = np.array(X[:n_rows], dtype=dtype, order="C")
    labels = np.array(labels[:n_rows], dtype=np.int64)
    Y = np.zeros((n_rows, workload.layer_sizes[-1]), dtype=dtype)
    Y[np.arange(n_rows), labels] = 1
    return X, Y, labels


def initial_weights(workload, dtype="float32"):
    """Return the shared initial weights of a workload (Glorot-uniform, zero biases).

    The draws are made in float64 from ``workload.weight_seed`` and then rounded to
    ``dtype``, so float32 and float64 runs start from the same point.

    Returns
    -------
    weights : list of ndarray, ``weights[k]`` of shape (n_in, n_out)
        scikit-learn's ``coefs_`` layout (``o_next = f(o @ W + b)``).
    biases : list of ndarray, ``biases[k]`` of shape (n_out,)
    """
    rng = np.random.default_rng(workload.weight_seed)
    weights, biases = [], []
    for n_in, n_out in zip(workload.layer_sizes[:-1], workload.layer_sizes[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        weights.append(rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    return weights, biases


def training_flops(workload):
    """Floating-point operations of one training run, counted as in workloads.md.

    Per sample and layer with an ``n_in x n_out`` weight matrix: 2 per weight for the
    forward pass, 2 for the weight gradient, and 2 more for the error terms of every
    layer but the first. Activations, losses and updates are not counted.

    Returns
    -------
    float
        FLOPs of all epochs over all rows (0 for a prediction workload).
    """
    if workload.task != "fit":
        return 0.0
    per_sample = 0
    for k, (n_in, n_out) in enumerate(zip(workload.layer_sizes[:-1],
                                          workload.layer_sizes[1:])):
        per_sample += (4 if k == 0 else 6) * n_in * n_out
    return float(per_sample) * n_rows_of(workload) * workload.epochs


def prediction_flops(workload):
    """Floating-point operations of one forward pass over all rows (2 per weight)."""
    per_sample = sum(2 * n_in * n_out for n_in, n_out in
                     zip(workload.layer_sizes[:-1], workload.layer_sizes[1:]))
    return float(per_sample) * n_rows_of(workload)


def workload_flops(workload):
    """Floating-point operations of the workload's timed task: its training run, or
    its prediction."""
    return training_flops(workload) if workload.task == "fit" else prediction_flops(workload)


def n_rows_of(workload):
    """Number of rows the workload uses."""
    if workload.n_rows is not None:
        return workload.n_rows
    return {"xor": 4, "digits": 1797, "synthetic": N_SYNTHETIC_ROWS}[workload.dataset]


def evaluate(workload, outputs, Y, labels):
    """Loss and accuracy of a network's outputs, the same formula for every peer.

    Parameters
    ----------
    workload : Workload
    outputs : ndarray, shape (n_rows, n_outputs)
        The network's outputs on the workload's ``X`` (probabilities for softmax).
    Y : ndarray, shape (n_rows, n_outputs)
        Targets from :func:`load_data`.
    labels : ndarray, shape (n_rows,)
        Class indices from :func:`load_data`.

    Returns
    -------
    dict
        ``loss``: mean over rows of ``0.5 * sum((o - y)**2)`` for MSE, of
        ``-sum(y * log(o))`` for cross-entropy; ``accuracy``: fraction of rows whose
        arg-max output (for one output: output > 0.5) is the label.
    """
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(Y), -1)
    Y = np.asarray(Y, dtype=np.float64)
    if workload.loss == "mse":
        loss = 0.5 * np.mean(np.sum((outputs - Y) ** 2, axis=1))
    else:
        eps = np.finfo(np.float64).tiny
        loss = -np.mean(np.sum(Y * np.log(np.maximum(outputs, eps)), axis=1))
    if outputs.shape[1] == 1:
        predicted = (outputs[:, 0] > 0.5).astype(np.int64)
    else:
        predicted = np.argmax(outputs, axis=1)
    return {"loss": float(loss), "accuracy": float(np.mean(predicted == labels))}


# ------------------------------------------------- the peer runner's exchange files


def inputs_file_names(workload, dtype):
    """Names of the files holding a workload's data and initial weights.

    Workloads on the same rows of the same data set (W3, W4, W5) share the data file.
    """
    sizes = "x".join(map(str, workload.layer_sizes))
    return (f"data_{workload.dataset}_{workload.n_rows or 'all'}_{dtype}.npz",
            f"weights_{workload.name}_{sizes}_{dtype}.npz")


def save_inputs(workload, dtype, directory):
    """Write a workload's data and initial weights to ``directory`` (uncompressed npz).

    The peer runner does this once per run, so that every peer process loads the very
    same bits rather than regenerating them with its own library versions.
    """
    directory = Path(directory)
    data_name, weights_name = inputs_file_names(workload, dtype)
    if not (directory / data_name).exists():
        X, Y, labels = load_data(workload, dtype)
        np.savez(directory / data_name, X=X, Y=Y, labels=labels)
    weights, biases = initial_weights(workload, dtype)
    arrays = {f"W{k}": w for k, w in enumerate(weights)}
    arrays.update({f"b{k}": b for k, b in enumerate(biases)})
    np.savez(directory / weights_name, **arrays)


def load_inputs(workload, dtype, directory=None):
    """Return ``X, Y, labels, weights, biases`` of a workload.

    Read from the files :func:`save_inputs` wrote to ``directory``; made afresh when
    ``directory`` is None.
    """
    if directory is None:
        X, Y, labels = load_data(workload, dtype)
        weights, biases = initial_weights(workload, dtype)
        return X, Y, labels, weights, biases
    directory = Path(directory)
    data_name, weights_name = inputs_file_names(workload, dtype)
    with np.load(directory / data_name) as data:
        X, Y, labels = data["X"], data["Y"], data["labels"]
    n_layers = len(workload.layer_sizes) - 1
    with np.load(directory / weights_name) as saved:
        weights = [saved[f"W{k}"] for k in range(n_layers)]
        biases = [saved[f"b{k}"] for k in range(n_layers)]
    return X, Y, labels, weights, biases
