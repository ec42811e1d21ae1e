"""Thread control around compiled calls: one thread pool at a time.

fastbp's kernels split every matrix product into fixed tiles and run the tiles on a
team of threads (``run_on_team``), each tile through a *single-threaded* BLAS call. If
the BLAS kept its own pool of threads, the two pools would fight for the cores
(measured: an epoch 30x slower) and a tile's result would depend on how many BLAS
threads computed it. So, for the duration of a compiled call, the BLAS that Numba calls
(SciPy's OpenBLAS) is set to one thread (``blas_on_one_thread``), and restored after.
"""
import contextlib
import ctypes
import glob
import os
import queue
import threading
import warnings

import numba

from ._team import STOP, team_ints

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
    """Number of threads to use: ``None`` means ``NUMBA_NUM_THREADS`` (by default, the
    number of cores), and no request goes above it."""
    if n_threads is None:
        return numba.config.NUMBA_NUM_THREADS
    return min(int(n_threads), numba.config.NUMBA_NUM_THREADS)


_blas_lock = threading.Lock()
_blas_users = 0  # bodies of blas_on_one_thread running now, on any thread
_blas_previous = None  # the BLAS thread count to restore when the last one ends


@contextlib.contextmanager
def blas_on_one_thread():
    """Run the body with the BLAS that compiled code calls set to one thread.

    The setting is the library's, shared by all threads: the first of overlapping bodies
    (fits on several Python threads) sets it, the last restores it. Each restoring its
    own predecessor's value put the BLAS back on its threads under a fit still running
    (caught by a test: two concurrent fits then differed from the same fits in turn).
    """
    global _blas_users, _blas_previous
    control = _find_blas_control()
    if not control:
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_previous = control[0]()
            if _blas_previous != 1:
                control[1](1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_previous != 1:
                control[1](_blas_previous)


class _Member:
    """A daemon thread that runs compiled calls as a team member, one call at a time."""

    def __init__(self):
        self.calls = queue.SimpleQueue()
        self.results = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="fastbp-team", daemon=True).start()

    def _serve(self):
        while True:
            kernel, args, team_i = self.calls.get()
            try:
                kernel(*args)
                self.results.put(None)
            except BaseException as error:  # handed to the caller, which re-raises it
                team_i[STOP] = 1  # member 0 must not wait for this one's tasks
                self.results.put(error)


_idle_members = []
_members_lock = threading.Lock()
_members_pid = os.getpid()


def _take_members(count):
    """``count`` idle members (new ones started as needed); concurrent calls get
    different members. After a fork the parent's threads are gone: start afresh."""
    global _members_pid
    with _members_lock:
        if _members_pid != os.getpid():
            _idle_members.clear()
            _members_pid = os.getpid()
        taken = [_idle_members.pop() for _ in range(min(count, len(_idle_members)))]
    return taken + [_Member() for _ in range(count - len(taken))]


def run_on_team(kernel, args, n_team, team_i, team_f):
    """``kernel(*args, tid, n_team, team_i, team_f)`` on a team of ``n_team`` threads:
    this thread is member 0 and returns the kernel's result; members ``1 .. n_team - 1``
    run on pooled threads. ``team_i`` and ``team_f`` are the team's shared slots (see
    ``fastbp._team``; ``team_i`` needs ``team_ints(n_team)`` slots); they are zeroed here.

    If member 0 fails (say, the first compilation raises), the others are told to stop
    and the error is raised once every member has returned; a member's own error is
    raised likewise. The threads are joined before this returns, either way.
    """
    if team_i.shape[0] < team_ints(n_team):
        raise ValueError(f"team_i has {team_i.shape[0]} slots; a team of {n_team} needs "
                         f"{team_ints(n_team)}")
    team_i[:] = 0
    team_f[:] = 0
    if n_team <= 1:
        return kernel(*args, 0, 1, team_i, team_f)
    members = _take_members(n_team - 1)
    for tid, member in enumerate(members, start=1):
        member.calls.put((kernel, (*args, tid, n_team, team_i, team_f), team_i))
    finished = False
    try:
        result = kernel(*args, 0, n_team, team_i, team_f)
        finished = True
    finally:
        if not finished:
            team_i[STOP] = 1  # the others wait for jobs member 0 will never post
        errors = [member.results.get() for member in members]
        with _members_lock:
            if _members_pid == os.getpid():
                _idle_members.extend(members)
    for error in errors:
        if error is not None:
            raise error
    return result
