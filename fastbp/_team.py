"""A team of threads inside one compiled call: atomics and job claiming for nopython code.

The threaded path runs each compiled entry point on a *team*: the calling thread (member
0) runs the entry's control flow, and ``n - 1`` Python threads (``fastbp._threads``)
enter the same entry with member numbers ``1 .. n - 1`` and wait in
``kernels._team_worker`` for work. For each parallel pass, member 0 writes a job
description into the shared int64 array ``team_i`` (and float64 ``team_f``) and posts
the job's task count (``post_job``): each member gets a contiguous share of the tasks,
its *home* range. Every member, member 0 included, then claims tasks one at a time
(``claim_task``): from the front of its home range, and once that is empty from the back
of the others'. Member 0 waits until every task is reported done (``finish_job``).
Numba's ``prange`` did the same with a parallel region per pass; each region cost about
0.4 s of compile time plus LLVM re-optimising its whole call tree three more times
(measured: 784-128-10's first fit on 2 threads compiled for 12.5-13.2 s).

Claiming, rather than fixed shares and a barrier, means a job waits for a member that
is not running only while that member holds a claimed task: on a shared machine the
operating system may take a member's core for milliseconds, and the members that are
running take its tasks. (W3 on 2 threads, float32, while a busy-loop process held one of
the two cores: 0.49-0.61 s with fixed shares, 0.32-0.38 s with claims, 0.31 s on one
thread.) Home ranges keep what fixed shares did well: when every member runs, each takes
the same tiles in every step, and its claims touch only its own cache line. One shared
counter that handed out the tasks in turn took W4 from 0.53-0.54 s to 0.59-0.61 s (2
threads, same slow phase of the machine); with home ranges W4 takes 0.456-0.466 s
against fixed shares' 0.449-0.452 s (quiet). Which member runs a task does not change
the task's result, so the bits depend neither on the thread count nor on timing.

Layout of ``team_i`` (``team_ints(n)`` slots for a team of ``n``): the stop flag, and the
done count with the open job's task count, each on its own 64-byte line (threads
spinning on one must not slow writes to another), the job slots (``kernels``' ``J_*``
constants) from ``JOB_BASE`` on, then a claim word per member, a line each. A claim word
packs the job's sequence number, the end and the front of the member's remaining range,
so that one compare-and-swap both checks that the job is still open and takes a task: a
member that read the word of a finished job cannot take a task of the next one.
"""
import platform

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._config import jit_serial

STOP, DONE, N_TASKS = 0, 8, 9  # N_TASKS: the open job's task count (written by member 0)
JOB_BASE, JOB_SLOTS = 16, 24
_CLAIM_BASE = JOB_BASE + JOB_SLOTS
TEAM_FLOATS = 16
# A claim word: sequence number (bits 42-62), end (21-41) and front (0-20) of a range.
_END_SHIFT, _SEQ_SHIFT = 21, 42
_FIELD = (1 << 21) - 1
MAX_TASKS = _FIELD  # tasks per job

# Spins with a pause instruction before a waiting member starts yielding its core to
# other threads: longer than the gap between two passes. Measured on the 2-core znver4
# machine: a pause takes 24.7 ns, so 4000 spins last about 0.1 ms. With fixed shares and a
# barrier, shorter budgets did not help reliably when another process held a core (W3 on
# 2 threads, medians of 7, with a busy-loop process running: 4000 spins 0.51-0.59 s, 400
# spins 0.36-0.59 s, 100 spins 1.32 s), so the value stays.
SPINS_BEFORE_YIELD = 4000
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def team_ints(n_team):
    """Length of the ``team_i`` array of a team of ``n_team`` members."""
    return _CLAIM_BASE + 8 * n_team


def element_pointer(context, builder, array_type, array, index):
    """LLVM pointer to ``array[index]`` of a 1-D array (for intrinsics' code generation)."""
    ary = context.make_array(array_type)(context, builder, array)
    return builder.gep(ary.data, [index])


def splat(builder, value, width):
    """LLVM vector of ``width`` copies of the scalar ``value`` (for intrinsics' code
    generation): one insert and a broadcast shuffle."""
    vector_type = ir.VectorType(value.type, width)
    i32 = ir.IntType(32)
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value,
                                 ir.Constant(i32, 0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, width), None))


def _read_modify_write(operation, doc):
    """An intrinsic ``f(array, index, value)`` that applies LLVM's atomic ``operation``
    (sequentially consistent) to ``array[index]`` (int64, 1-D) and returns the old value."""
    def typer(typingctx, array, index, value):
        sig = types.int64(array, types.intp, types.int64)

        def codegen(context, builder, signature, args):
            ptr = element_pointer(context, builder, signature.args[0], args[0], args[1])
            return builder.atomic_rmw(operation, ptr, args[2], "seq_cst")

        return sig, codegen

    typer.__name__, typer.__doc__ = f"atomic_{operation}", doc
    return intrinsic(typer)


atomic_add = _read_modify_write(
    "add", """``array[index] += value`` atomically (sequentially consistent); returns the
    old value. ``array`` is int64, 1-D.""")
atomic_exchange = _read_modify_write(
    "xchg", """``array[index] = value`` atomically (sequentially consistent: no read or
    write after it moves before it, none before it moves after it); returns the old
    value. ``array`` is int64, 1-D.""")


@intrinsic
def atomic_compare_exchange(typingctx, array, index, expected, value):
    """If ``array[index] == expected``, set it to ``value``, atomically (sequentially
    consistent); returns whether it did."""
    sig = types.boolean(array, types.intp, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = element_pointer(context, builder, signature.args[0], args[0], args[1])
        pair = builder.cmpxchg(ptr, args[2], args[3], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return sig, codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]`` read atomically with acquire order (int64, 1-D)."""
    sig = types.int64(array, types.intp)

    def codegen(context, builder, signature, args):
        ptr = element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def _spin_pause(typingctx):
    """The x86 ``pause`` hint (nothing elsewhere): eases a spinning core."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = builder.module.declare_intrinsic("llvm.x86.sse2.pause",
                                                  fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _yield_core(typingctx):
    """``sched_yield()`` from the C library: lets another thread run on this core."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = builder.module.globals.get("sched_yield")
        if fn is None:
            fn = ir.Function(builder.module, fnty, "sched_yield")
        return builder.call(fn, [])

    return sig, codegen


@jit_serial(inline=True)
def _wait_a_little(spins):
    """One round of a wait loop that has run ``spins`` rounds: a pause while the wait is
    short, then a yield of the core. Returns ``spins + 1``."""
    if spins < SPINS_BEFORE_YIELD:
        _spin_pause()
    else:
        _yield_core()
    return spins + 1


@jit_serial(inline=True)
def post_job(team_i, n, n_tasks):
    """Member 0 of a team of ``n``: open a job of ``n_tasks`` tasks (``0 <= n_tasks <=
    MAX_TASKS``), whose slots it has written, to every member's ``claim_task``. The
    previous job must be finished (``finish_job``)."""
    team_i[DONE], team_i[N_TASKS] = 0, n_tasks
    seq = ((atomic_load(team_i, _CLAIM_BASE) >> _SEQ_SHIFT) + 1) & _FIELD
    for k in range(n):
        front, end = (k * n_tasks) // n, ((k + 1) * n_tasks) // n  # member k's home range
        # Sequentially consistent: the slots and the reset count are visible to any
        # member that sees the new word.
        atomic_exchange(team_i, _CLAIM_BASE + 8 * k,
                        (seq << _SEQ_SHIFT) | (end << _END_SHIFT) | front)


@jit_serial
def claim_task(team_i, tid, n):
    """Member ``tid``'s next task of the open job, now its own: the front of its home
    range, else the back of another member's; -1 if every task is claimed (or no job is
    open). The job stays open, and its slots unchanged, until the claimed task is
    reported done."""
    for j in range(n):
        k = tid + j if tid + j < n else tid + j - n
        slot = _CLAIM_BASE + 8 * k
        while True:
            word = atomic_load(team_i, slot)
            front, end = word & _FIELD, (word >> _END_SHIFT) & _FIELD
            if front >= end:
                break
            # Fails (and the loop reads the word again) if another member claimed from
            # this range meanwhile.
            if k == tid:
                if atomic_compare_exchange(team_i, slot, word, word + 1):
                    return front
            elif atomic_compare_exchange(team_i, slot, word, word - (1 << _END_SHIFT)):
                return end - 1
    return -1


@jit_serial(inline=True)
def report_done(team_i, n_done):
    """Report ``n_done`` claimed tasks done; their writes are then visible to member 0
    once ``finish_job`` returns."""
    if n_done > 0:
        atomic_add(team_i, DONE, n_done)


@jit_serial
def wait_for_job(team_i, n):
    """Members other than 0 of a team of ``n``: wait until a posted job has a task left
    to claim (``True``), or until the team is told to stop (``False``: member 0 has
    finished, or a member failed). Another member may claim the task first."""
    spins = 0
    while True:
        for k in range(n):
            word = atomic_load(team_i, _CLAIM_BASE + 8 * k)
            if word & _FIELD < (word >> _END_SHIFT) & _FIELD:
                return True
        if atomic_load(team_i, STOP) != 0:
            return False
        spins = _wait_a_little(spins)


@jit_serial
def finish_job(team_i, n_done):
    """Member 0, after its own claims ran out: report its ``n_done`` tasks and wait until
    every task of the open job is reported done. Returns ``False`` (at once) if the stop
    flag is set, which the Python side does when another member failed."""
    report_done(team_i, n_done)
    spins = 0
    while atomic_load(team_i, DONE) != team_i[N_TASKS]:
        if atomic_load(team_i, STOP) != 0:
            return False
        spins = _wait_a_little(spins)
    return True


@jit_serial(inline=True)
def stop_team(team_i):
    """Member 0: tell the other members to leave (``wait_for_job`` returns ``False``)."""
    atomic_exchange(team_i, STOP, 1)
