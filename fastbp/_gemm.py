"""fastbp's own register-tiled matrix product, in 512-bit vectors (AVX-512) or 256-bit
vectors (AVX2).

Measured on the 2-core AMD Zen 4 machine (one core, float32, GFLOP/s), OpenBLAS's
AVX-512 kernels reach 83-101 on the products of the standard workloads, and the loop
below 100-111 (see ``register_tiled_gemm``); its inner loop alone, on operands in cache,
runs at 115, the core's peak of 32 float32 multiply-adds per cycle. On the 2-core Zen 3
(AVX2), the 256-bit tiles beat OpenBLAS on small and middling products only
(``HALF_WIDTH_TILE_LIMIT``); ``takes_register_tiles`` routes the products.

The product ``C = alpha * op(A) @ B + beta * C`` is computed in tiles of ``TILE_ROWS``
rows and ``WIDE_VECTORS`` vectors of columns (6 x 64 float32 or 6 x 32 float64 with
512-bit vectors, 6 x 16 or 6 x 8 with 256-bit ones): 24 (12) vector accumulators, each
step of the inner loop loading 4 (2) vectors of a row of ``B`` and broadcasting 6
elements of ``A`` into 24 (12) fused multiply-adds. ``A`` is read in place,
row-major or transposed (its elements are broadcast one by one, so either layout is one
stride), and so is ``B``: no packing, no scratch memory. ``B`` transposed (the delta
recursion's ``delta @ W^T``) would need a gather per vector: ``register_tiled_gemm_bt``
first transposes each strip of it into a buffer on the stack, a square block of vector
registers at a time (``transpose_block``). Measured, one core, float32 GFLOP/s against
OpenBLAS: 256 x 1024 x 256 (W4's delta tile) 109 / 92, 64 x 1024 x 256 95 / 67, 8 x 1024 x
256 38 / 18, 256 x 10 x 1024 70-75 / 38-47, 100 x 300 x 50 80 / 83 (the one loss seen).
Products with both operands transposed stay with the BLAS (fastbp has none).

Each element of ``C`` is an in-order chain of fused multiply-adds over blocks of
``DEPTH`` terms of the inner dimension, the blocks added to ``C`` in order. Its bits
therefore depend on the inner dimension only: not on the tile, its position in the
product, or the thread count.
"""
import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic, overload

from ._config import jit_serial
from ._team import element_pointer, splat

TILE_ROWS = 6
# Terms of the inner dimension per pass over a strip of B: 256 rows of 64 float32 (64 KiB)
# stay in the L2 cache while every row tile of A streams past them. Measured, one core,
# float32 GFLOP/s on W4's three shapes with B not transposed: 128 terms 88-100, 256 terms
# 103-107, 512 terms 101-108, the whole inner dimension at once 99-105.
DEPTH = 256
# Multiply-adds from which a product goes to the 512-bit register tiles rather than the
# BLAS. Below it the rows of the last tile past the product's (a 6-row tile computes 6)
# and the per-tile set-up weigh more: measured, one core, float32, us per product,
# register tiles against OpenBLAS: 32 x 64 x 256 10.3 / 9.0, 49 x 128 x 128 (A transposed)
# 15.7 / 14.3, 96 x 96 x 96 16.1 / 15.5; above it 100 x 50 x 300 35.3 / 35.9, 128 x 128 x
# 128 41.4 / 49.0, 64 x 128 x 784 117 / 151.
REGISTER_TILE_PRODUCT = 1 << 20
# With 256-bit vectors (AVX2), the other way round: the register tiles win on small and
# middling products, where OpenBLAS's packing of both operands on every call weighs most,
# and lose on large ones. Measured on a 2-core Zen 3, one core, operands in cache, GFLOP/s
# tiles / OpenBLAS (medians of 7, or of 15 alternated for the W3-W5 shapes): float32
# 32 x 64 x 64 77 / 46, 64 x 64 x 32 (A transposed) 73 / 49, 32 x 10 x 64 42 / 32,
# 128 x 64 x 784 87 / 72, 196 x 128 x 128 (A transposed) 85 / 73, 256 x 128 x 784 77 / 80,
# 256 x 256 x 1024 68 / 81; float64 32 x 64 x 64 35 / 33, 128 x 10 x 128 19 / 15,
# 49 x 128 x 128 (A transposed) 28 / 26, 128 x 128 x 784 27 / 31. Products below these
# many multiply-adds (float32, float64) go to the 256-bit tiles.
HALF_WIDTH_TILE_LIMIT = (1 << 24, 1 << 20)


def _target_features():
    """The CPU features Numba compiles for (its target, not just the host), or ``None`` for
    a named (portable) target, whose features are not guessed."""
    if config.CPU_FEATURES is not None:
        return {f[1:] for f in config.CPU_FEATURES.split(",") if f.startswith("+")}
    if config.CPU_NAME not in (None, "host"):
        return None
    return {name for name, on in llvm_binding.get_host_cpu_features().items() if on}


def _target_vector_bytes():
    """Bytes per vector of the register tiles on Numba's target CPU: 64 with AVX-512F, 32
    with AVX2 and FMA, 0 (no register tiles: the BLAS does every product) otherwise."""
    features = _target_features() or set()
    if "avx512f" in features:
        return 64
    if {"avx2", "fma"} <= features:
        return 32
    return 0


# Numba's cache keys compiled code by the target CPU and its features, so constants taken
# from them are never stale in a cached kernel. A tile holds TILE_ROWS x WIDE_VECTORS vector
# accumulators: 24 of AVX-512's 32 registers, 12 of AVX2's 16 (the rest hold the row of B
# and the broadcast element of A). Without either the tiles still compile, in 256-bit
# vectors (the tests run them), but no product is sent to them.
_TARGET_VECTOR_BYTES = _target_vector_bytes()
# The register tiles take the large products (and the tiling of ``fastbp.kernels``
# follows them): only with 512-bit vectors.
REGISTER_TILES = _TARGET_VECTOR_BYTES == 64
_VECTOR_BYTES = 64 if REGISTER_TILES else 32
WIDE_VECTORS = 4 if REGISTER_TILES else 2
# Float32 columns of one strip (``register_tiled_gemm``'s loop order): the column
# tiles of ``fastbp.kernels.tile_cols`` are whole strips.
STRIP_COLUMNS = WIDE_VECTORS * _VECTOR_BYTES // 4


@jit_serial
def takes_register_tiles(m, n, k, c):
    """Whether an ``m x n`` product with inner dimension ``k`` and output ``c`` goes to the
    register tiles rather than the BLAS (the shape, dtype and CPU decide, never threads)."""
    if _TARGET_VECTOR_BYTES == 64:
        return m * n * k >= REGISTER_TILE_PRODUCT
    if _TARGET_VECTOR_BYTES == 32:
        limit = HALF_WIDTH_TILE_LIMIT[0] if c.itemsize == 4 else HALF_WIDTH_TILE_LIMIT[1]
        return m * n * k < limit
    return False


def vector_lanes(arr):
    """Elements of ``arr``'s dtype per vector of the register tiles, a compile-time
    constant (nopython)."""
    raise NotImplementedError  # only the nopython overload below exists


@overload(vector_lanes, jit_options={"nogil": True})
def _vector_lanes_impl(arr):
    lanes = _VECTOR_BYTES * 8 // arr.dtype.bitwidth

    def impl(arr):
        return lanes

    return impl


@intrinsic
def register_tile(typingctx, a, a_start, a_row_step, a_depth_step, rows, b, b_start,
                  b_depth_step, cols, depth, alpha, beta, c, c_start, ldc, n_vectors):
    """One tile of ``C = alpha * op(A) @ B + beta * C`` in vector registers.

    For ``i < rows`` and ``j < cols``::

        s = 0;  for p < depth:  s = fma(a[a_start + i * a_row_step + p * a_depth_step],
                                         b[b_start + p * b_depth_step + j], s)
        c[c_start + i * ldc + j] = alpha * s + beta * c[...]   (alpha * s if beta == 0)

    ``rows <= TILE_ROWS`` and ``0 < cols <= n_vectors * lanes``; ``n_vectors`` is a literal
    integer. ``a``, ``b``, ``c`` are contiguous 1-D arrays of one float dtype (``a`` and
    ``b`` may be read-only); ``alpha`` and ``beta`` are float64, rounded to that dtype
    first (as the BLAS takes them), and the arithmetic is in that dtype. Only the tile's
    own elements are read or written (rows past ``rows`` repeat the last row's loads and
    are not stored; when ``cols`` is not a whole number of vectors, the last vector of a
    row is masked). No bounds checks: the caller guarantees the indices. Nopython only.

    The loop exists twice, with the last vector masked and with plain loads and stores
    only: AVX2's masked loads and stores cost several plain ones, and masking every
    vector kept the 256-bit tiles below OpenBLAS (one core, float32, 32 x 64 x 64: 55
    GFLOP/s against 78 unmasked; 128 x 128 x 784: 61 against 83).
    """
    def flat(array):
        return (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"
                and array.dtype in (types.float32, types.float64) and array.dtype == c.dtype)

    if not (flat(a) and flat(b) and flat(c) and c.mutable
            and alpha == types.float64 and beta == types.float64
            and isinstance(n_vectors, types.IntegerLiteral) and n_vectors.literal_value > 0):
        return None
    n_vec = n_vectors.literal_value
    intp = types.intp
    sig = types.void(a, intp, intp, intp, intp, b, intp, intp, intp, intp, alpha, beta, c,
                     intp, intp, n_vectors)

    def codegen(context, builder, signature, args):
        (a_v, a_start_v, a_row_v, a_depth_v, rows_v, b_v, b_start_v, b_depth_v, cols_v,
         depth_v, alpha_v, beta_v, c_v, c_start_v, ldc_v, _) = args
        a_type, b_type, c_type = signature.args[0], signature.args[5], signature.args[12]
        element = context.get_value_type(c_type.dtype)
        lanes = _VECTOR_BYTES * 8 // c_type.dtype.bitwidth
        vec = ir.VectorType(element, lanes)
        i32 = ir.IntType(32)
        index_type = a_start_v.type

        def index(value):
            return ir.Constant(index_type, value)

        align = ir.Constant(i32, c_type.dtype.bitwidth // 8)
        mask_type = ir.VectorType(ir.IntType(1), lanes)
        suffix = f"v{lanes}f{c_type.dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fma.{suffix}")
        masked_load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [element.as_pointer(), i32, mask_type, vec]),
            f"llvm.masked.load.{suffix}.p0")
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(),
                                            [vec, element.as_pointer(), i32, mask_type]),
            f"llvm.masked.store.{suffix}.p0")
        zeros = ir.Constant(vec, None)

        # The mask of the last vector of a row (only it can be partial): lane l is column
        # (n_vec - 1) * lanes + l, kept if below ``cols``.
        last = n_vec - 1
        last_mask = builder.icmp_signed(
            "<", ir.Constant(ir.VectorType(i32, lanes), [last * lanes + j for j in range(lanes)]),
            splat(builder, builder.trunc(cols_v, i32), lanes))

        # Rows past ``rows`` read the last row again: the loop stays branch-free.
        a_first = element_pointer(context, builder, a_type, a_v, a_start_v)
        last_row = builder.sub(rows_v, index(1))
        a_rows = []
        for i in range(TILE_ROWS):
            row = builder.select(builder.icmp_signed("<", index(i), rows_v), index(i), last_row)
            a_rows.append(builder.gep(a_first, [builder.mul(row, a_row_v)]))
        b_first = element_pointer(context, builder, b_type, b_v, b_start_v)
        c_first = element_pointer(context, builder, c_type, c_v, c_start_v)
        if c_type.dtype == types.float32:
            alpha_s = builder.fptrunc(alpha_v, element)
            beta_s = builder.fptrunc(beta_v, element)
        else:
            alpha_s, beta_s = alpha_v, beta_v
        alpha_vec = splat(builder, alpha_s, lanes)
        beta_vec = splat(builder, beta_s, lanes)
        keep = builder.fcmp_unordered("!=", beta_s, ir.Constant(element, 0.0))
        vec_ptr = vec.as_pointer()

        def load(ptr, v, masked):
            if masked and v == last:
                return builder.call(masked_load, [ptr, align, last_mask, zeros])
            return builder.load(builder.bitcast(ptr, vec_ptr), align=align.constant)

        def store(value, ptr, v, masked):
            if masked and v == last:
                builder.call(masked_store, [value, ptr, align, last_mask])
            else:
                builder.store(value, builder.bitcast(ptr, vec_ptr), align=align.constant)

        def emit(masked):
            acc = [[cgutils.alloca_once_value(builder, zeros) for _ in range(n_vec)]
                   for _ in range(TILE_ROWS)]
            with cgutils.for_range(builder, depth_v) as loop:
                b_row = builder.gep(b_first, [builder.mul(loop.index, b_depth_v)])
                b_vectors = [load(builder.gep(b_row, [index(v * lanes)]), v, masked)
                             for v in range(n_vec)]
                a_step = builder.mul(loop.index, a_depth_v)
                for i in range(TILE_ROWS):
                    a_value = splat(builder, builder.load(builder.gep(a_rows[i], [a_step])),
                                    lanes)
                    for v in range(n_vec):
                        builder.store(builder.call(fma, [a_value, b_vectors[v],
                                                         builder.load(acc[i][v])]), acc[i][v])
            for i in range(TILE_ROWS):
                with builder.if_then(builder.icmp_signed("<", index(i), rows_v)):
                    c_row = builder.gep(c_first, [builder.mul(index(i), ldc_v)])
                    for v in range(n_vec):
                        where = builder.gep(c_row, [index(v * lanes)])
                        scaled = builder.fmul(alpha_vec, builder.load(acc[i][v]))
                        with builder.if_else(keep) as (then, otherwise):
                            with then:
                                old = load(where, v, masked)
                                store(builder.fadd(scaled, builder.fmul(beta_vec, old)),
                                      where, v, masked)
                            with otherwise:
                                # beta == 0 ignores C's old values, NaN included.
                                store(scaled, where, v, masked)

        whole = builder.icmp_signed("==", cols_v, ir.Constant(cols_v.type, n_vec * lanes))
        with builder.if_else(whole) as (then, otherwise):
            with then:
                emit(False)
            with otherwise:
                emit(True)
        return context.get_dummy_value()

    return sig, codegen


def _transpose_masks(lanes):
    """Shuffle masks of a ``lanes x lanes`` transpose in log2(lanes) stages: the stage for
    block size ``b`` swaps the off-diagonal ``b x b`` blocks of each pair of rows ``i``,
    ``i + b`` (``i // b`` even); ``(b, first, second)``, the masks of rows ``i`` and
    ``i + b`` over the two rows concatenated."""
    stages = []
    b = lanes // 2
    while b >= 1:
        first = [j if (j // b) % 2 == 0 else lanes + j - b for j in range(lanes)]
        second = [j + b if (j // b) % 2 == 0 else lanes + j for j in range(lanes)]
        stages.append((b, first, second))
        b //= 2
    return stages


@intrinsic
def transpose_block(typingctx, src, src_start, src_ld, dst, dst_start, dst_ld):
    """``dst[dst_start + j * dst_ld + i] = src[src_start + i * src_ld + j]`` for ``i, j <
    lanes`` (one 512-bit vector of the dtype): a square block transposed in vector
    registers, with ``lanes`` loads, ``lanes * log2(lanes)`` two-source shuffles and
    ``lanes`` stores. ``src`` and ``dst`` are contiguous 1-D arrays of one float dtype
    (``src`` may be read-only). No bounds checks. Nopython only."""
    def flat(array):
        return (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"
                and array.dtype in (types.float32, types.float64))

    if not (flat(src) and flat(dst) and dst.mutable and src.dtype == dst.dtype):
        return None
    intp = types.intp
    sig = types.void(src, intp, intp, dst, intp, intp)

    def codegen(context, builder, signature, args):
        src_v, src_start_v, src_ld_v, dst_v, dst_start_v, dst_ld_v = args
        element = context.get_value_type(dst.dtype)
        lanes = _VECTOR_BYTES * 8 // dst.dtype.bitwidth
        vec_ptr = ir.VectorType(element, lanes).as_pointer()
        align = dst.dtype.bitwidth // 8
        i32 = ir.IntType(32)
        src_first = element_pointer(context, builder, signature.args[0], src_v, src_start_v)
        dst_first = element_pointer(context, builder, signature.args[3], dst_v, dst_start_v)
        rows = []
        for i in range(lanes):
            at = builder.gep(src_first, [builder.mul(ir.Constant(src_ld_v.type, i), src_ld_v)])
            rows.append(builder.load(builder.bitcast(at, vec_ptr), align=align))
        for b, first, second in _transpose_masks(lanes):
            new = list(rows)
            for i in range(lanes):
                if (i // b) % 2 == 0:
                    new[i] = builder.shuffle_vector(rows[i], rows[i + b],
                                                    ir.Constant(ir.VectorType(i32, lanes), first))
                    new[i + b] = builder.shuffle_vector(
                        rows[i], rows[i + b], ir.Constant(ir.VectorType(i32, lanes), second))
            rows = new
        for j in range(lanes):
            at = builder.gep(dst_first, [builder.mul(ir.Constant(dst_ld_v.type, j), dst_ld_v)])
            builder.store(rows[j], builder.bitcast(at, vec_ptr), align=align)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def strip_buffer(typingctx, like):
    """A 1-D array of ``DEPTH * WIDE_VECTORS * lanes`` elements of ``like``'s dtype (one
    packed strip of ``B``) on the calling function's stack frame: no heap allocation, valid
    until that function returns (never return or keep it). Contents undefined.
    Nopython only."""
    if not (isinstance(like, types.Array) and like.dtype in (types.float32, types.float64)):
        return None
    array_type = types.Array(like.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        element = context.get_value_type(like.dtype)
        size = DEPTH * WIDE_VECTORS * (_VECTOR_BYTES * 8 // like.dtype.bitwidth)
        with builder.goto_entry_block():  # once per call, not per loop iteration
            data = builder.alloca(element, size=ir.Constant(ir.IntType(64), size))
            data.align = _VECTOR_BYTES
        array = context.make_array(array_type)(context, builder)
        itemsize = context.get_abi_sizeof(element)
        intp = context.get_value_type(types.intp)
        context.populate_array(array, data=data, shape=[ir.Constant(intp, size)],
                               strides=[ir.Constant(intp, itemsize)],
                               itemsize=ir.Constant(intp, itemsize), meminfo=None)
        return array._getvalue()

    return array_type(like), codegen


# Compiled apart (``fastbp._apart``): both loop nests below call it, and linked into each
# its four tile loops were optimised once more in every caller up to ``gemm_rm``.
@jit_serial(apart=True)
def _row_tiles(m, a, a_start, a_row_step, a_depth_step, b, b_start, ldb, cols, depth, alpha,
               beta, c, c_start, ldc, n_vectors):
    """Every row tile of one strip of columns, for one block of ``depth`` terms (``cols <=
    n_vectors * lanes``). Written: ``c``."""
    for i0 in range(0, m, TILE_ROWS):
        rows = min(TILE_ROWS, m - i0)
        a_i = a_start + i0 * a_row_step
        c_i = c_start + i0 * ldc
        # A literal vector count (1 to WIDE_VECTORS) per tile: each is its own loop.
        if n_vectors == 4:
            register_tile(a, a_i, a_row_step, a_depth_step, rows, b, b_start, ldb, cols,
                          depth, alpha, beta, c, c_i, ldc, 4)
        elif n_vectors == 3:
            register_tile(a, a_i, a_row_step, a_depth_step, rows, b, b_start, ldb, cols,
                          depth, alpha, beta, c, c_i, ldc, 3)
        elif n_vectors == 2:
            register_tile(a, a_i, a_row_step, a_depth_step, rows, b, b_start, ldb, cols,
                          depth, alpha, beta, c, c_i, ldc, 2)
        else:
            register_tile(a, a_i, a_row_step, a_depth_step, rows, b, b_start, ldb, cols,
                          depth, alpha, beta, c, c_i, ldc, 1)


@jit_serial
def register_tiled_gemm(trans_a, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                        c_off, ldc):
    """Row-major ``C = alpha * op(A) @ B + beta * C`` in register tiles (``B`` not
    transposed; arguments as ``fastbp._blas.gemm_rm``'s, ``alpha`` and ``beta`` float64).
    ``m, n, k > 0``. Written: ``c``.

    Loop order: blocks of ``DEPTH`` terms, then strips of columns, then tiles of rows, so
    that a strip of ``B`` stays in cache while the rows of ``A`` stream past it. A last,
    narrower strip uses tiles of as many vectors as it needs.
    """
    lanes = vector_lanes(c)
    wide = WIDE_VECTORS * lanes
    a_row_step, a_depth_step = (1, lda) if trans_a else (lda, 1)
    for p0 in range(0, k, DEPTH):
        depth = min(DEPTH, k - p0)
        beta_p = beta if p0 == 0 else 1.0  # later blocks add to C
        for j0 in range(0, n, wide):
            cols = min(wide, n - j0)
            _row_tiles(m, a, a_off + p0 * a_depth_step, a_row_step, a_depth_step, b,
                       b_off + p0 * ldb + j0, ldb, cols, depth, alpha, beta_p, c,
                       c_off + j0, ldc, (cols + lanes - 1) // lanes)


@jit_serial
def _pack_transposed_strip(b, b_start, ldb, cols, depth, pack, wide):
    """``pack[p * wide + j] = b[b_start + j * ldb + p]`` for ``j < cols``, ``p < depth``:
    a strip of the transpose of ``B``, in square blocks of vector registers where whole,
    element by element at the edges. Written: ``pack``."""
    lanes = vector_lanes(pack)
    whole_cols = cols - cols % lanes
    whole_depth = depth - depth % lanes
    for j0 in range(0, whole_cols, lanes):
        for p0 in range(0, whole_depth, lanes):
            transpose_block(b, b_start + j0 * ldb + p0, ldb, pack, p0 * wide + j0, wide)
        for p in range(whole_depth, depth):
            for j in range(j0, j0 + lanes):
                pack[p * wide + j] = b[b_start + j * ldb + p]
    for j in range(whole_cols, cols):
        for p in range(depth):
            pack[p * wide + j] = b[b_start + j * ldb + p]


@jit_serial
def register_tiled_gemm_bt(m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
                           ldc):
    """Row-major ``C = alpha * A @ B^T + beta * C`` in register tiles (``A`` not transposed,
    ``B`` stored ``n x k``; arguments as ``fastbp._blas.gemm_rm``'s, ``alpha`` and ``beta``
    float64). ``m, n, k > 0``. Written: ``c``.

    As ``register_tiled_gemm``, but each strip of ``B^T`` (``DEPTH`` terms by
    ``WIDE_VECTORS`` vectors of columns) is first transposed into a buffer on the stack,
    then every row tile of ``A`` streams past it. The packing is one read and one write
    per element of ``B`` for every ``m`` rows of ``C``; measured, it beats the BLAS from 8
    rows up (module docstring). Each element of ``C`` is the same chain of fused
    multiply-adds as with ``B`` untransposed.
    """
    lanes = vector_lanes(c)
    wide = WIDE_VECTORS * lanes
    pack = strip_buffer(c)
    for p0 in range(0, k, DEPTH):
        depth = min(DEPTH, k - p0)
        beta_p = beta if p0 == 0 else 1.0  # later blocks add to C
        for j0 in range(0, n, wide):
            cols = min(wide, n - j0)
            _pack_transposed_strip(b, b_off + j0 * ldb + p0, ldb, cols, depth, pack, wide)
            _row_tiles(m, a, a_off + p0, lda, 1, pack, 0, wide, cols, depth, alpha, beta_p,
                       c, c_off + j0, ldc, (cols + lanes - 1) // lanes)
