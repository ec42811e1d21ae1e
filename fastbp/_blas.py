"""Row-major matrix products on flat buffers, callable from nopython code.

Every matrix in fastbp's kernels lives in a flat 1-D buffer and is described by
``(buffer, offset, leading_dimension)``; a tile of a matrix is then just another
offset. ``gemm_rm`` computes ``C = alpha * op(A) @ op(B) + beta * C`` on such
tiles in row-major convention. Tiny products go to plain loops, where a call costs more
than the arithmetic. Where fastbp's own register tiles (``fastbp._gemm``) are faster than
the BLAS, products with ``A`` or ``B`` (not both) transposed go to them: the large ones on
CPUs with 512-bit vectors, the small and middling ones on CPUs with AVX2
(``takes_register_tiles``). The others go to the BLAS ``?gemm`` that Numba itself uses
(SciPy's, through ``numba_xxgemm``).

The BLAS must run single-threaded while kernels call it (``fastbp._threads``
arranges that): fastbp parallelises over tiles itself, so that each tile is
computed the same way whatever the number of threads.
"""
from numba import types
from numba.extending import overload
from numba.np.linalg import _BLAS
from numba.np.numpy_support import as_dtype

from ._apart import call_apart
from ._config import jit_serial
from ._gemm import register_tiled_gemm, register_tiled_gemm_bt, takes_register_tiles

_xxgemm_f32 = _BLAS().numba_xxgemm(types.float32)
_xxgemm_f64 = _BLAS().numba_xxgemm(types.float64)

# Below this many multiply-adds a BLAS call (about a microsecond of overhead) costs
# more than plain loops; the choice depends on the shape only, never on threads.
SMALL_PRODUCT = 4096


def _xxgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major BLAS ``?gemm`` on raw pointers (dtype chosen at compile time)."""
    raise NotImplementedError  # only the nopython overload below exists


@overload(_xxgemm, jit_options={"nogil": True})
def _xxgemm_impl(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    dtype = a.dtype
    if dtype == types.float32:
        fn, kind = _xxgemm_f32, ord("s")
    elif dtype == types.float64:
        fn, kind = _xxgemm_f64, ord("d")
    else:
        return None

    def impl(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        return fn(kind, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    return impl


def cast_like(x, arr):
    """``x`` as a scalar of ``arr``'s dtype (nopython only): keeps float32 loops in float32."""
    raise NotImplementedError  # only the nopython overload below exists


@overload(cast_like, jit_options={"nogil": True})
def _cast_like_impl(x, arr):
    scalar = as_dtype(arr.dtype).type

    def impl(x, arr):
        return scalar(x)

    return impl


@jit_serial
def _gemm_loops(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb,
                beta, c, c_off, ldc):
    # Rows are indexed through views from 0, so that Numba emits no negative-index
    # fix-up and LLVM vectorises the inner loops.
    for i in range(m):
        c_row = c[c_off + i * ldc:c_off + i * ldc + n]
        for j in range(n):
            c_row[j] = c_row[j] * beta if beta != 0 else 0.0
        for p in range(k):
            a_ip = a[a_off + p * lda + i] if trans_a else a[a_off + i * lda + p]
            s = alpha * a_ip
            if trans_b:
                for j in range(n):
                    c_row[j] += s * b[b_off + j * ldb + p]
            else:
                b_row = b[b_off + p * ldb:b_off + p * ldb + n]
                for j in range(n):
                    c_row[j] += s * b_row[j]


@jit_serial(entry=True)
def gemm_rm(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb,
            beta, c, c_off, ldc, scalars):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C`` on tiles of flat buffers.

    Parameters
    ----------
    trans_a, trans_b : bool
        Use the transpose of the stored matrix ``A`` (``B``).
    m, n, k : int
        ``op(A)`` is ``m x k``, ``op(B)`` is ``k x n``, ``C`` is ``m x n``.
    alpha, beta : float
        Scale factors; ``beta == 0`` overwrites ``C`` (its old contents are ignored).
    a, b, c : 1-D float arrays
        Flat buffers; element ``(i, j)`` of a stored matrix is ``buf[off + i * ld + j]``.
    a_off, b_off, c_off : int
        Offset of the tile's first element in its buffer.
    lda, ldb, ldc : int
        Row strides (leading dimensions) of the stored matrices.
    scalars : 1-D float array of length 2
        Scratch for ``alpha`` and ``beta`` (BLAS takes them by pointer); owned by the caller's
        thread. Written.

    Notes
    -----
    ``c`` is written. Small products (fewer than ``SMALL_PRODUCT`` multiply-adds) use plain
    loops; the others register tiles (``A`` or ``B`` or neither transposed, sizes as
    ``fastbp._gemm.takes_register_tiles`` says for this CPU) or the BLAS. The choice
    depends on the shape, the dtype and the CPU only, so the result for a given shape never
    depends on the thread count.
    """
    if m == 0 or n == 0:
        return
    if k == 0 or m * n * k < SMALL_PRODUCT:
        _gemm_loops(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb,
                    beta, c, c_off, ldc)
        return
    if takes_register_tiles(m, n, k, c):
        if not trans_b:
            register_tiled_gemm(trans_a, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                                c, c_off, ldc)
            return
        if not trans_a:
            register_tiled_gemm_bt(m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                                   c_off, ldc)
            return
    scalars[0] = alpha
    scalars[1] = beta
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    ta = ord("t") if trans_b else ord("n")
    tb = ord("t") if trans_a else ord("n")
    _xxgemm(ta, tb, n, m, k, scalars[0:].ctypes, b[b_off:].ctypes, ldb,
            a[a_off:].ctypes, lda, scalars[1:].ctypes, c[c_off:].ctypes, ldc)


# The tiles call ``gemm_rm`` through its own machine code (``fastbp._apart``): linked into
# each pass instead, its BLAS set-up was optimised again in every one (64-64-10 network,
# empty cache: first fit 7.8-7.9 -> 6.9 s).
gemm_rm_apart = call_apart(gemm_rm)
