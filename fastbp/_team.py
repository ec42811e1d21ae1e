"""A team of threads inside one compiled call: atomics and a barrier for nopython code.

The threaded path runs each compiled entry point on a *team*: the calling thread (member
0) runs the entry's control flow, and ``n - 1`` Python threads (``fastbp._threads``)
enter the same entry with member numbers ``1 .. n - 1`` and wait in
``kernels._team_worker`` for work. For each parallel pass, member 0 writes a job
description into the shared int64 array ``team_i`` (and float64 ``team_f``), all members
pass a barrier, each runs its fixed share of the job's tiles, and all pass a second
barrier. Numba's ``prange`` did the same with a parallel region per pass; each region
cost about 0.4 s of compile time plus LLVM re-optimising its whole call tree three more
times (measured: 784-128-10's first fit on 2 threads compiled for 12.5-13.2 s).

Layout of ``team_i``: the barrier's arrival count, its generation and an abort flag,
each on its own 64-byte line (threads spinning on one must not slow writes to another),
then the job slots (``kernels``' ``JOB_*`` constants) from ``JOB_BASE`` on.
"""
import platform

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._config import jit_serial

ARRIVED, GENERATION, ABORT = 0, 8, 16
JOB_BASE = 24
TEAM_INTS = 64
TEAM_FLOATS = 16
# Spins with a pause instruction before a waiting member starts yielding its core to
# other threads: longer than the gap between two passes. Measured on the 2-core znver4
# machine: a pause takes 24.7 ns, so 4000 spins last about 0.1 ms. Shorter budgets did
# not help reliably when another process held a core (W3 on 2 threads, medians of 7, with
# a busy-loop process running: 4000 spins 0.51-0.59 s, 400 spins 0.36-0.59 s, 100 spins
# 1.32 s), so the value stays.
SPINS_BEFORE_YIELD = 4000
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _element_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return builder.gep(ary.data, [index])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """``array[index] += value`` atomically (sequentially consistent); returns the old
    value. ``array`` is int64, 1-D."""
    sig = types.int64(array, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]`` read atomically with acquire order (int64, 1-D)."""
    sig = types.int64(array, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
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


@jit_serial
def team_barrier(team_i, n):
    """Wait until all ``n`` members have arrived. Returns ``False`` (at once) if the abort
    flag is set, which the Python side does when member 0 failed to run.

    Every write a member made before arriving is visible to every member after it leaves
    (the arrival is a sequentially consistent read-modify-write, the wait an acquire).
    """
    if n <= 1:
        return True
    generation = atomic_load(team_i, GENERATION)
    if atomic_add(team_i, ARRIVED, 1) == n - 1:
        atomic_add(team_i, ARRIVED, -n)  # the last to arrive resets the count, then opens
        atomic_add(team_i, GENERATION, 1)
        return True
    spins = 0
    while atomic_load(team_i, GENERATION) == generation:
        if atomic_load(team_i, ABORT) != 0:
            return False
        if spins < SPINS_BEFORE_YIELD:
            spins += 1
            _spin_pause()
        else:
            _yield_core()
    return True
