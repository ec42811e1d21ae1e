"""The shuffling generator: SplitMix64 and a Fisher-Yates permutation.

The compiled epoch kernel shuffles in place with ``permute_inplace``; the NumPy
reference runs the very same algorithm in plain Python (``permute_inplace_py``),
so that both visit the rows in the same order for the same seed.
"""
import numpy as np

from ._config import jit_serial

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def seed_state(random_state):
    """Initial generator state (a 1-element ``uint64`` array) from ``random_state``.

    ``None`` draws fresh entropy; an int (or a ``numpy.random.Generator``) gives a
    reproducible stream.
    """
    rng = np.random.default_rng(random_state)
    return np.array([rng.integers(0, 2**63, dtype=np.int64)], dtype=np.uint64)


@jit_serial(entry=True)
def permute_inplace(order, state):
    """Shuffle ``order`` in place; advances ``state[0]`` (SplitMix64). Both are written."""
    n = order.shape[0]
    for i in range(n - 1, 0, -1):
        s = state[0] + np.uint64(_GAMMA)
        state[0] = s
        z = (s ^ (s >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
        z = z ^ (z >> np.uint64(31))
        j = np.int64(z % np.uint64(i + 1))
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


def permute_inplace_py(order, state):
    """Plain-Python twin of :func:`permute_inplace` (same numbers, for the reference)."""
    s = int(state[0])
    for i in range(len(order) - 1, 0, -1):
        s = (s + _GAMMA) & _MASK64
        z = ((s ^ (s >> 30)) * _MIX1) & _MASK64
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
        z ^= z >> 31
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    state[0] = np.uint64(s)
