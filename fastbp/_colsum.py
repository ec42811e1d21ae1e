"""Column sums of a row-major block, a vector of columns at a time, for nopython code.

The bias gradient sums each column of the error terms over the rows, in float64 and in
row order (the same bits for every tiling and thread count). Written as Python, eight
float64 accumulators stay scalar: Numba runs LLVM without its SLP vectoriser, which is
what would pack them into vector registers, and the adds are then bound by their latency
(a 32 x 64 float32 block: 0.59 us). ``scaled_column_sums`` emits the loop with one vector
accumulator instead. Each lane is still one column summed over the rows in order, with the
same IEEE adds and products, so the results are bitwise those of the scalar loop; only
independent columns share an instruction.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._team import element_pointer, splat


@intrinsic
def scaled_column_sums(typingctx, src, s_start, ld, n_rows, alpha, beta, keep, dst, d_start,
                       width):
    """``dst[d_start + j] = alpha * s_j + (beta * dst[d_start + j] if keep else 0.0)`` for
    ``0 <= j < width``, where ``s_j`` is the float64 sum over ``r < n_rows`` (in order, from
    ``0.0``) of ``src[s_start + r * ld + j]``.

    ``src`` and ``dst`` are 1-D float32 or float64 arrays, ``alpha`` and ``beta`` float64
    (as in the scalar expression the result is computed in float64 and rounded once to
    ``dst``'s dtype), ``keep`` a boolean and ``width`` a literal integer. ``dst``'s old values
    are read either way (a select, not a branch). No bounds checks: the caller guarantees
    every index is inside its array. Nopython only.
    """
    floats = (types.float32, types.float64)
    if not (isinstance(src, types.Array) and src.ndim == 1 and src.dtype in floats
            and isinstance(dst, types.Array) and dst.ndim == 1 and dst.dtype in floats
            and alpha == types.float64 and beta == types.float64
            and isinstance(width, types.IntegerLiteral) and width.literal_value > 0):
        return None
    n = width.literal_value
    sig = types.void(src, types.intp, types.intp, types.intp, types.float64, types.float64,
                     types.boolean, dst, types.intp, width)

    def codegen(context, builder, signature, args):
        src_v, s_start_v, ld_v, n_rows_v, alpha_v, beta_v, keep_v, dst_v, d_start_v, _ = args
        double = ir.DoubleType()
        wide = ir.VectorType(double, n)

        def vector_pointer(array_type, array, start):
            element = context.get_value_type(array_type.dtype)
            return builder.bitcast(element_pointer(context, builder, array_type, array, start),
                                   ir.VectorType(element, n).as_pointer())

        def load_wide(array_type, pointer):
            value = builder.load(pointer, align=array_type.dtype.bitwidth // 8)
            return builder.fpext(value, wide) if array_type.dtype == types.float32 else value

        zeros = ir.Constant(wide, None)
        acc = cgutils.alloca_once_value(builder, zeros)
        with cgutils.for_range(builder, n_rows_v) as loop:
            row = builder.add(s_start_v, builder.mul(loop.index, ld_v))
            values = load_wide(signature.args[0], vector_pointer(signature.args[0], src_v, row))
            builder.store(builder.fadd(builder.load(acc), values), acc)
        dst_type = signature.args[7]
        out = vector_pointer(dst_type, dst_v, d_start_v)
        scaled = builder.fmul(splat(builder, alpha_v, n), builder.load(acc))
        kept = builder.fadd(scaled, builder.fmul(splat(builder, beta_v, n),
                                                 load_wide(dst_type, out)))
        cleared = builder.fadd(scaled, zeros)  # "+ 0.0" as in the scalar form: -0.0 -> 0.0
        value = builder.select(keep_v, kept, cleared)
        if dst_type.dtype == types.float32:
            value = builder.fptrunc(value, ir.VectorType(ir.FloatType(), n))
        builder.store(value, out, align=dst_type.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen
