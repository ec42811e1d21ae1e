"""Thread control around compiled calls: one thread pool at a time.

fastbp's kernels split every matrix product into fixed tiles and run the tiles on
Numba's threads, each tile through a *single-threaded* BLAS call. If the BLAS kept its
own pool of threads, the two pools would fight for the cores (measured: an epoch 30x
slower) and a tile's result would depend on how many BLAS threads computed it. So,
for the duration of a compiled call, the BLAS that Numba calls (SciPy's OpenBLAS) is
set to one thread, and Numba to the network's thread count; both are restored after.
"""
import contextlib
import ctypes
import glob
import os
import warnings

import numba

_SETTERS = ("scipy_openblas_set_num_threads", "openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_GETTERS = ("scipy_openblas_get_num_threads", "openblas_get_num_threads",
            "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")

_blas_control = None  # (get, set) once found; False when no controllable BLAS was found


def _candidate_libraries():
    """Shared libraries that may hold the BLAS behind ``scipy.linalg.cython_blas``."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library we look for)
    import scipy

    found = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir,
                                   "scipy.libs", "*openblas*"))
    try:  # conda and system builds: whatever OpenBLAS this process has mapped
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "openblas" in os.path.basename(path).lower() and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def _find_blas_control():
    global _blas_control
    if _blas_control is not None:
        return _blas_control
    _blas_control = False
    for path in _candidate_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            _blas_control = (getter, setter)
            break
    if not _blas_control:
        warnings.warn(
            "fastbp could not find the BLAS behind SciPy to pin it to one thread; "
            "results may then depend on the thread count and the BLAS threads may compete "
            "with fastbp's. Set OPENBLAS_NUM_THREADS=1 (or MKL_NUM_THREADS=1) to avoid this.",
            RuntimeWarning, stacklevel=3)
    return _blas_control


def resolve_n_threads(n_threads):
    """Number of Numba threads to use: ``None`` means all that Numba was started with."""
    if n_threads is None:
        return numba.config.NUMBA_NUM_THREADS
    return min(int(n_threads), numba.config.NUMBA_NUM_THREADS)


@contextlib.contextmanager
def compiled_call_threads(n_threads):
    """Run the body with Numba on ``n_threads`` threads and the BLAS on one thread."""
    control = _find_blas_control()
    previous_numba = numba.get_num_threads()
    previous_blas = control[0]() if control else None
    if control and previous_blas != 1:
        control[1](1)
    numba.set_num_threads(resolve_n_threads(n_threads))
    try:
        yield
    finally:
        numba.set_num_threads(previous_numba)
        if control and previous_blas != 1:
            control[1](previous_blas)
