"""The thread team behind the threaded path: its barrier orders memory, a failing member
never leaves the others waiting, and concurrent calls neither share members nor undo each
other's one-thread BLAS setting."""
import threading

import numba
import numpy as np
import pytest
from numba import njit

from fastbp import Network, _config
from fastbp._team import ABORT, TEAM_FLOATS, TEAM_INTS, team_barrier
from fastbp._threads import run_on_team

TEST_JIT = dict(_config.JIT_OPTIONS, cache=False)


@njit(**TEST_JIT)
def rounds_in_step(slots, n_rounds, errors, tid, n_team, team_i, team_f):
    """Each member writes the round number into its slot, passes the barrier and checks
    every slot, then passes it again before the next round overwrites them."""
    for r in range(n_rounds):
        slots[tid * 8] = r  # one slot per cache line
        team_barrier(team_i, n_team)
        for k in range(n_team):
            if slots[k * 8] != r:
                errors[tid] += 1
        team_barrier(team_i, n_team)
    return tid


@pytest.mark.parametrize("n_team", [1, 2, 3])  # 3: more threads than this machine's cores
def test_barrier_makes_every_write_before_it_visible_after_it(n_team):
    slots = np.full(8 * n_team, -1, np.int64)
    errors = np.zeros(n_team, np.int64)
    team_i, team_f = np.zeros(TEAM_INTS, np.int64), np.zeros(TEAM_FLOATS)
    result = run_on_team(rounds_in_step, (slots, 3000, errors), n_team, team_i, team_f)
    assert result == 0  # member 0's return value
    assert errors.tolist() == [0] * n_team
    assert slots[::8].tolist() == [2999] * n_team


@njit(**TEST_JIT)
def wait_once(team_i, n_team):
    return team_barrier(team_i, n_team)


def run_with_deadline(target, seconds=60):
    """Run ``target`` in a thread; fail (instead of hanging the suite) if it is still
    running after ``seconds``. Returns what it raised, or None."""
    raised = []

    def body():
        try:
            target()
        except Exception as error:  # noqa: BLE001 (handed to the test)
            raised.append(error)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the team hung"
    return raised[0] if raised else None


def test_failing_member_zero_releases_the_others_and_raises():
    waited = []

    def kernel(tid, n_team, team_i, team_f):
        if tid == 0:
            raise RuntimeError("member 0 failed")
        waited.append(wait_once(team_i, n_team))

    team_i, team_f = np.zeros(TEAM_INTS, np.int64), np.zeros(TEAM_FLOATS)
    error = run_with_deadline(lambda: run_on_team(kernel, (), 3, team_i, team_f))
    assert isinstance(error, RuntimeError) and "member 0 failed" in str(error)
    assert waited == [False, False]  # both left the barrier through the abort flag
    assert team_i[ABORT] == 1


def test_failing_other_member_releases_member_zero_and_raises():
    def kernel(tid, n_team, team_i, team_f):
        if tid == 1:
            raise ValueError("member 1 failed")
        return wait_once(team_i, n_team)

    team_i, team_f = np.zeros(TEAM_INTS, np.int64), np.zeros(TEAM_FLOATS)
    error = run_with_deadline(lambda: run_on_team(kernel, (), 2, team_i, team_f))
    assert isinstance(error, ValueError) and "member 1 failed" in str(error)


def test_team_slots_are_reset_before_each_call():
    # A call after an aborted one starts with a clear abort flag and barrier count.
    team_i, team_f = np.zeros(TEAM_INTS, np.int64), np.zeros(TEAM_FLOATS)
    team_i[:] = 7
    slots, errors = np.zeros(16, np.int64), np.zeros(2, np.int64)
    run_on_team(rounds_in_step, (slots, 10, errors), 2, team_i, team_f)
    assert errors.tolist() == [0, 0]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                    reason="the threaded path needs NUMBA_NUM_THREADS >= 2 (one-core machine)")
def test_concurrent_threaded_fits_match_sequential_ones(rng):
    X = rng.standard_normal((512, 100))
    Y = np.eye(10)[rng.integers(0, 10, 512)]

    def fit(seed):
        net = Network([100, 400, 10], "relu", "softmax", "cross_entropy", random_state=seed,
                      n_threads=2)
        assert net._engine._parallel(256)  # the threaded path
        net.fit(X, Y, epochs=2, batch_size=256)
        return net._engine.theta.copy()

    sequential = [fit(seed) for seed in (1, 2)]
    concurrent = [None, None]

    def fit_into(i):
        concurrent[i] = fit(i + 1)

    threads = [threading.Thread(target=fit_into, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(np.array_equal(a, b) for a, b in zip(sequential, concurrent))
