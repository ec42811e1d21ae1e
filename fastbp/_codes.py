"""Integer codes for activations, losses and optimizers.

One compiled kernel serves every activation, loss and optimizer: names are mapped to
these small integers at the API boundary, and the kernels branch on them once per
layer (or once per step), never once per element.
"""

IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "logistic": SIGMOID,
               "tanh": TANH, "relu": RELU, "softmax": SOFTMAX, "exp": EXP}
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "logistic", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "logistic", "tanh", "relu", "softmax", "exp")

MSE, CROSS_ENTROPY, BINARY_CROSS_ENTROPY, POISSON = 0, 1, 2, 3
LOSSES = {"mse": MSE, "cross_entropy": CROSS_ENTROPY,
          "binary_cross_entropy": BINARY_CROSS_ENTROPY, "poisson": POISSON}
# Internal variants whose *value* clips probabilities to [eps, 1 - eps] before the log, as
# scikit-learn's log-loss does (gradients are the same: yhat - y).
CROSS_ENTROPY_CLIPPED, BINARY_CROSS_ENTROPY_CLIPPED = 4, 5
CLIPPED = {CROSS_ENTROPY: CROSS_ENTROPY_CLIPPED,
           BINARY_CROSS_ENTROPY: BINARY_CROSS_ENTROPY_CLIPPED}

# Losses whose output error term is exactly ``yhat - y`` only with one output activation.
CANONICAL_OUTPUT = {"cross_entropy": ("softmax",),
                    "binary_cross_entropy": ("sigmoid", "logistic"),
                    "poisson": ("exp",)}

SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3
OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM}

# Training-status codes returned by the epoch kernel.
RUNNING, FINISHED, DIVERGED, NON_FINITE_INPUT = 0, 1, 2, 3
