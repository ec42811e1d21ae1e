"""Initial weights, shared by ``fastbp.Network`` and ``fastbp.reference``."""
import numpy as np

INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal")


def initial_parameters(layer_sizes, init, hidden_activation, rng, dtype):
    """Random initial weights and biases.

    Parameters
    ----------
    layer_sizes : sequence of int
    init : {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal"}
        Glorot (Xavier) scales by ``fan_in + fan_out``; with sigmoid hidden units the
        uniform bound uses factor 2 instead of 6, as scikit-learn does. He scales by
        ``fan_in`` (suited to relu). Biases are drawn like the weights for Glorot
        (scikit-learn's choice) and start at zero for He.
    hidden_activation : str
    rng : numpy.random.Generator
    dtype : numpy dtype

    Returns
    -------
    weights, biases : list of ndarray
    """
    weights, biases = [], []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        if init.startswith("glorot"):
            factor = 2.0 if hidden_activation in ("sigmoid", "logistic") else 6.0
            bound = np.sqrt(factor / (n_in + n_out))
            if init == "glorot_uniform":
                w = rng.uniform(-bound, bound, (n_in, n_out))
                b = rng.uniform(-bound, bound, n_out)
            else:
                w = rng.normal(0.0, bound / np.sqrt(3.0), (n_in, n_out))
                b = rng.normal(0.0, bound / np.sqrt(3.0), n_out)
        else:
            scale = np.sqrt(2.0 / n_in)
            if init == "he_uniform":
                w = rng.uniform(-scale * np.sqrt(3.0), scale * np.sqrt(3.0), (n_in, n_out))
            else:
                w = rng.normal(0.0, scale, (n_in, n_out))
            b = np.zeros(n_out)
        weights.append(w.astype(dtype))
        biases.append(b.astype(dtype))
    return weights, biases
