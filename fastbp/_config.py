"""JIT policy for every compiled kernel of fastbp, in one place.

All kernels are compiled with the options below, at module scope, so that a
``Network`` never triggers compilation inside ``fit``. Environment escape hatches:

``FASTBP_DISABLE_CACHE=1``
    Do not write or read Numba's on-disk cache (useful when timing cold compiles).
``FASTBP_FASTMATH=1``
    Compile with the fastmath flags ``contract``, ``nsz`` and ``arcp`` (never
    ``nnan``/``ninf``, so a diverging run stays detectable). Off by default: measured,
    LLVM contracts multiply-adds into FMAs differently once a helper is inlined into the
    serial or into the threaded pass, so float32 results then differed in the last bits
    between thread counts. fastbp's heavy arithmetic is in BLAS, unaffected either way.

Kernels are compiled without Numba's reference-counted runtime (``_nrt=False``): they
never allocate (an allocating kernel fails to compile), and each array passed to a
compiled helper no longer costs an atomic reference-count update and its release
(measured: a quarter of the step time of a 2-4-1 network).
"""
import os

from numba import njit
from numba.core.registry import CPUDispatcher

from ._apart import call_apart, register

FASTMATH = {"contract", "nsz", "arcp"} if os.environ.get("FASTBP_FASTMATH", "0") == "1" else False

# Numba's cache does not key entries by compile options: never mix fastmath builds into it.
CACHE = os.environ.get("FASTBP_DISABLE_CACHE", "0") != "1" and not FASTMATH

JIT_OPTIONS = dict(nogil=True, cache=CACHE, fastmath=FASTMATH, error_model="numpy", _nrt=False)


# Options for kernels called only from other kernels: no wrapper to call them from Python
# (or as a C callback). Generating and optimising the wrapper's boxing code for every
# argument cost about 0.8 s of the 6.5 s cold compile of the small-network path.
INTERNAL_OPTIONS = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)


class InternalDispatcher(CPUDispatcher):
    """A kernel without a Python wrapper: compiled code calls it, Python may not.

    Called from Python, Numba would jump to the wrapper that was never generated (a
    segmentation fault); this raises a ``TypeError`` instead. Calls from compiled code
    do not go through ``__call__``.
    """

    def __call__(self, *args, **kwargs):
        raise TypeError(f"{self.py_func.__module__}.{self.py_func.__qualname__} runs only "
                        f"inside fastbp's compiled kernels and cannot be called from Python "
                        f"(use fastbp.Network or the estimators)")


def jit_serial(func=None, inline=False, entry=False, apart=False, **local_types):
    """Compile ``func`` in nopython mode with fastbp's serial options.

    ``entry=True`` marks a kernel that Python calls (the engine's entry points, and the
    helpers the tests call directly); every other kernel is compiled without the Python
    wrapper (``INTERNAL_OPTIONS``) and can be called only from compiled code.

    ``local_types`` pins the Numba type of local variables. Kernels use it for constants
    they pass to other kernels: Numba would otherwise type a literal ``True`` or ``0`` as a
    *literal* type and compile the callee once more for each such value.

    ``inline=True`` inlines ``func`` into its callers at Numba's IR level. Numba
    optimises every compiled function together with all its callees, so each level of
    calls re-optimises the whole tree below it; inlining a wrapper removes a level
    (used where it measurably shortens the first compile).

    ``apart=True`` compiles ``func`` on its own, and compiled callers call that machine
    code instead of linking in a copy of it to optimise again (``fastbp._apart``). For
    large kernels called per block, tile or layer (an out-of-line call each time);
    ``func`` must be internal (not ``entry``).
    """
    def decorate(f):
        options = dict(JIT_OPTIONS)
        if inline:
            options["inline"] = "always"
        if not entry:
            options.update(INTERNAL_OPTIONS)
        dispatcher = register(njit(locals=local_types, **options)(f))
        if not entry:
            dispatcher.__class__ = InternalDispatcher  # same layout: only __call__ differs
        if apart:
            assert not (inline or entry), "a kernel compiled apart is internal and not inlined"
            return call_apart(dispatcher)
        return dispatcher

    return decorate(func) if func is not None else decorate
