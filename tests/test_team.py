"""The thread team behind the threaded path: its claims order memory, a job finishes
without a member that is not running, a failing member never leaves the others waiting,
and concurrent calls neither share members nor undo each other's one-thread BLAS setting."""
import threading

import numba
import numpy as np
import pytest
from numba import njit

from fastbp import Network, _config
from fastbp._team import (JOB_BASE, STOP, TEAM_FLOATS, claim_task, finish_job, post_job,
                          report_done, stop_team, team_ints, wait_for_job)
from fastbp._threads import run_on_team

TEST_JIT = dict(_config.JIT_OPTIONS, cache=False)


@njit(**TEST_JIT)
def _run_tasks(tid, n_team, team_i, inputs, outputs, counts, errors):
    """Claim and run tasks until none is left: task ``t`` of job ``r`` checks that it sees
    ``inputs[t] == r`` and the job's slot, then writes ``outputs[t] = r``."""
    n_done = 0
    task = claim_task(team_i, tid, n_team)
    while task >= 0:
        job = team_i[JOB_BASE]
        if inputs[task] != job:
            errors[tid] += 1
        outputs[task] = job
        counts[tid] += 1
        n_done += 1
        task = claim_task(team_i, tid, n_team)
    return n_done


@njit(**TEST_JIT)
def jobs_in_turn(inputs, outputs, counts, errors, n_jobs, tid, n_team, team_i, team_f):
    """Member 0 posts ``n_jobs`` jobs of 0 to 40 tasks; after each it checks that every
    task's write is visible. The other members run the tasks they claim."""
    if tid > 0:
        while wait_for_job(team_i, n_team):
            report_done(team_i, _run_tasks(tid, n_team, team_i, inputs, outputs, counts,
                                           errors))
        return tid
    for job in range(n_jobs):
        n_tasks = (job * 7) % 41
        inputs[:n_tasks] = job
        team_i[JOB_BASE] = job
        post_job(team_i, n_team, n_tasks)
        if not finish_job(team_i, _run_tasks(0, n_team, team_i, inputs, outputs, counts,
                                             errors)):
            errors[0] += 1000
        for t in range(n_tasks):
            if outputs[t] != job:
                errors[0] += 1
    stop_team(team_i)
    return tid


@njit(**TEST_JIT)
def wait_once(team_i, n_team):
    return wait_for_job(team_i, n_team)


@njit(**TEST_JIT)
def post_one_and_finish(team_i):
    post_job(team_i, 1, 1)  # a task member 0 does not claim, and no other member reports
    return finish_job(team_i, 0)


def _expected_tasks(n_jobs):
    return sum((job * 7) % 41 for job in range(n_jobs))


def _team_arrays(n_team=3):
    return np.zeros(team_ints(n_team), np.int64), np.zeros(TEAM_FLOATS)


@pytest.mark.parametrize("n_team", [1, 2, 3])  # 3: more threads than this machine's cores
def test_claimed_tasks_see_the_job_and_member_zero_sees_their_writes(n_team):
    inputs, outputs = np.full(64, -1, np.int64), np.full(64, -1, np.int64)
    counts, errors = np.zeros(n_team, np.int64), np.zeros(n_team, np.int64)
    team_i, team_f = _team_arrays()
    result = run_on_team(jobs_in_turn, (inputs, outputs, counts, errors, 3000), n_team,
                         team_i, team_f)
    assert result == 0  # member 0's return value
    assert errors.tolist() == [0] * n_team
    assert counts.sum() == _expected_tasks(3000)  # each task ran exactly once


def test_a_job_finishes_without_a_member_that_is_not_running():
    # Member 1 enters only after member 0 has returned: with fixed shares this would
    # hang; with claims member 0 runs every task (its own range, then member 1's from
    # the back), and member 1 then sees the stop flag.
    member_zero_done = threading.Event()
    inputs, outputs = np.full(64, -1, np.int64), np.full(64, -1, np.int64)
    counts, errors = np.zeros(2, np.int64), np.zeros(2, np.int64)

    def kernel(*args):
        tid = args[5]
        if tid == 0:
            try:
                return jobs_in_turn(*args)
            finally:
                member_zero_done.set()
        assert member_zero_done.wait(60)
        return jobs_in_turn(*args)

    team_i, team_f = _team_arrays()
    error = run_with_deadline(lambda: run_on_team(
        kernel, (inputs, outputs, counts, errors, 200), 2, team_i, team_f))
    assert error is None
    assert errors.tolist() == [0, 0]
    assert counts.tolist() == [_expected_tasks(200), 0]


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

    team_i, team_f = _team_arrays()
    error = run_with_deadline(lambda: run_on_team(kernel, (), 3, team_i, team_f))
    assert isinstance(error, RuntimeError) and "member 0 failed" in str(error)
    assert waited == [False, False]  # both left through the stop flag
    assert team_i[STOP] == 1


def test_failing_other_member_releases_member_zero_and_raises():
    finished = []

    def kernel(tid, n_team, team_i, team_f):
        if tid == 1:
            raise ValueError("member 1 failed")
        finished.append(post_one_and_finish(team_i))

    team_i, team_f = _team_arrays()
    error = run_with_deadline(lambda: run_on_team(kernel, (), 2, team_i, team_f))
    assert isinstance(error, ValueError) and "member 1 failed" in str(error)
    assert finished == [False]  # member 0 stopped waiting through the stop flag


def test_too_few_team_slots_raise():
    team_i, team_f = np.zeros(team_ints(2), np.int64), np.zeros(TEAM_FLOATS)
    with pytest.raises(ValueError, match="a team of 3 needs"):
        run_on_team(jobs_in_turn, (), 3, team_i, team_f)


def test_team_slots_are_reset_before_each_call():
    # A call after an aborted one starts with a clear stop flag, claim word and count.
    team_i, team_f = _team_arrays()
    team_i[:] = 7
    inputs, outputs = np.full(64, -1, np.int64), np.full(64, -1, np.int64)
    counts, errors = np.zeros(2, np.int64), np.zeros(2, np.int64)
    run_on_team(jobs_in_turn, (inputs, outputs, counts, errors, 10), 2, team_i, team_f)
    assert errors.tolist() == [0, 0]
    assert counts.sum() == _expected_tasks(10)


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
