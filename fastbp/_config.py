"""JIT policy for every compiled kernel of fastbp, in one place.

All kernels are compiled with the options below, at module scope, so that a
``Network`` never triggers compilation inside ``fit``. Environment escape hatches:

``FASTBP_DISABLE_CACHE=1``
    Do not write or read Numba's on-disk cache (useful when timing cold compiles).
``FASTBP_FASTMATH=0``
    Compile without any fastmath flag (IEEE-exact arithmetic everywhere).

``fastmath`` never includes ``nnan``/``ninf``: a diverging run must stay detectable,
and Numba then keeps ``isfinite`` checks meaningful.
"""
import os

from numba import njit

CACHE = os.environ.get("FASTBP_DISABLE_CACHE", "0") != "1"

# Contraction into FMA, no signed zeros, reciprocal approximation: all safe for the
# finiteness checks; "afn" (approximate libm) is left out because it would move
# exp/log results away from the NumPy reference by more than the tested 1e-10.
FASTMATH = (
    {"contract", "nsz", "arcp"} if os.environ.get("FASTBP_FASTMATH", "1") != "0" else False
)

JIT_OPTIONS = dict(nogil=True, cache=CACHE, fastmath=FASTMATH, error_model="numpy")


def jit_serial(func=None, **local_types):
    """Compile ``func`` in nopython mode with fastbp's serial options.

    ``local_types`` pins the Numba type of local variables. Kernels use it for constants
    they pass to other kernels: Numba would otherwise type a literal ``True`` or ``0`` as a
    *literal* type and compile the callee once more for each such value.
    """
    def decorate(f):
        return njit(locals=local_types, **JIT_OPTIONS)(f)

    return decorate(func) if func is not None else decorate


def jit_parallel(func):
    """Compile ``func`` in nopython mode with ``parallel=True`` (``prange`` loops run threaded)."""
    return njit(parallel=True, **JIT_OPTIONS)(func)
