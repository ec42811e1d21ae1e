"""Compiled backpropagation kernels (Numba, nopython).

Memory layout
-------------
Parameters live in one flat vector ``theta``. Layer ``l`` (``l = 0 .. L-1``) maps
``sizes[l]`` units to ``sizes[l+1]`` units; its weights ``W_l`` are stored row-major
with shape ``(sizes[l], sizes[l+1])`` (scikit-learn's ``coefs_`` layout) starting at
``theta[w_off[l]]``, its biases ``b_l`` at ``theta[b_off[l]]``. Gradients ``grad``
have the same layout as ``theta``.

Per-row values of a block of at most ``block_rows`` rows live in flat work buffers:
``acts`` holds the outputs ``o_l`` of unit layer ``l`` (``l = 0`` is the input) as a
row-major ``(rows, sizes[l])`` matrix at ``acts[act_off[l]]``; ``deltas`` holds the error
terms ``delta_l = dE/da_l`` at the same offsets; ``logits`` holds the output layer's
activation sums ``a_L`` (kept for numerically stable losses); ``ybuf``/``swbuf`` the
block's targets and sample weights; ``row_loss`` each row's (weighted) error.

Parallelism and determinism
---------------------------
Every matrix product is cut into tiles whose shape depends only on the product's
shape and on whether the CPU has fastbp's register tiles (``tile_rows``/``tile_cols``),
never on the thread count. Each tile is computed
by one thread, start to finish, and each thread writes only its own tiles; sums over
rows (bias gradients, the batch loss) run serially in a fixed order. The team's jobs
(``_team_tasks``) and the serial passes (``*_ser``) call the same tile functions, so
1 thread, N threads and the serial path give bitwise identical results.

The entry points take three path flags, ``fused``, ``tiled`` and ``threads``: exactly one
is ``True`` and the others ``None`` (the small-network path, serial tiles, tiles on a team
of threads: see "The thread team" below and ``fastbp._team``). The choice is made by the
arguments' *types*: Numba prunes a branch on ``flag is not None`` before typing only when
``flag`` is None, so each path tests its own flag (``serial``/``threads`` in the helpers)
and a run compiles only its own passes (each costs seconds to compile).

All kernels take inputs first and written arrays last (documented per kernel), and
trust their arguments: validation happens once, in the Python layer.
"""
import numpy as np
from numba import types
from numba.extending import overload

from ._blas import cast_like, gemm_rm_apart
from ._codes import (ADAM, BINARY_CROSS_ENTROPY, BINARY_CROSS_ENTROPY_CLIPPED, CROSS_ENTROPY,
                     CROSS_ENTROPY_CLIPPED, DIVERGED, EXP, FINISHED, NON_FINITE_INPUT,
                     IDENTITY, MOMENTUM, MSE, NESTEROV, RELU, RUNNING, SGD,
                     SIGMOID, SOFTMAX, TANH)
from ._colsum import scaled_column_sums
from ._config import jit_serial
from ._exp import poly_exp
from ._gemm import REGISTER_TILE_PRODUCT, REGISTER_TILES, STRIP_COLUMNS
from ._rng import permute_inplace
from ._team import (JOB_BASE, JOB_SLOTS, N_TASKS, claim_task, finish_job, post_job, report_done,
                    stop_team, wait_for_job)


# ---------------------------------------------------------------------------
# Tiling (a function of the product's shape only)
# ---------------------------------------------------------------------------

@jit_serial
def _cdiv(a, b):
    return (a + b - 1) // b


@jit_serial(entry=True)
def tile_rows(m, k):
    """Rows per tile for an ``m x n`` output with inner dimension ``k``: ``m`` split into a
    power-of-two number of equal tiles of at most 256 rows or, on CPUs with fastbp's
    register tiles when ``m`` or ``k`` is below 256, 64 rows."""
    # With register tiles (measured on a 2-core Zen 4, single-threaded OpenBLAS sgemm per
    # tile before them): 256-row tiles took W4 from 119 to 154 GFLOP/s against 128-row
    # tiles, and W3/W5 gained 5-10%. When the product is small the extra tiles balance
    # the threads better than bigger tiles compute. Equal tiles in a power-of-two number
    # give 2, 4, 8 or 16 threads the same share: W3's weight gradient (784 rows) as 16
    # tiles of 49 rows instead of 12 of 64 and one of 16 took W3 from 0.227 to 0.193 s.
    # Without register tiles every product is a BLAS call, and each call packs its
    # operands again: a tile of the weight gradient packs all of ``delta``, a row tile of
    # the forward sums all of ``W``. On a 2-core Zen 3 (AVX2) OpenBLAS's copies took 34%
    # of W3's samples with 64-row tiles (17% with one whole-product call per product);
    # 256-row tiles and the column split of ``tile_cols`` took W3 from 0.280-0.320 s to
    # 0.234-0.276 s (medians of 9, four alternations).
    # The price of big tiles: a 256-row batch of a 1024-wide layer is one row tile, so
    # the threads share it by columns (``tile_cols``): 16 tiles with register tiles, 4 on
    # the BLAS, where more than 4-8 threads cannot all work on it.
    target = 256 if m >= 256 and k >= 256 or not REGISTER_TILES else 64
    n = 1
    while n * target < m:
        n *= 2
    return _cdiv(m, n)


@jit_serial(entry=True)
def tile_cols(m, n, k):
    """Columns per tile for an ``m x n`` output with inner dimension ``k``."""
    # A short inner dimension (weight gradients: k = batch rows) makes each BLAS call
    # cheap, so wider tiles amortise its packing: 512 columns measured 151-172 GFLOP/s
    # on W4's weight gradients against 124-162 with 256.
    if REGISTER_TILES:
        # fastbp's register tiles compute a product strip by strip (64 float32 columns
        # each) with every row of ``A`` streaming past each strip, so a narrower tile
        # does the same work per strip and only adds tasks for more threads to share:
        # the narrowest whole number of strips whose tile still goes to the register
        # tiles (``REGISTER_TILE_PRODUCT``), so the routing, and the bits, stay the same.
        # Measured on a 16-core AVX-512 machine, W4 on 16 threads: 1.88 s with 256-column
        # tiles (4 forward tasks), 1.00 s with 64; on 1 and 2 threads no slower.
        widest = min(n, 512) if k <= 256 else min(n, 256)
        needed = _cdiv(REGISTER_TILE_PRODUCT, tile_rows(m, k) * k)
        return min(widest, max(STRIP_COLUMNS, _cdiv(needed, STRIP_COLUMNS) * STRIP_COLUMNS))
    if k <= 256:
        return min(n, 512)
    if tile_rows(m, k) < m:
        return min(n, 256)
    # One row tile on the BLAS: two column tiles rather than one, each packing half of
    # ``W`` (W3's profile: OpenBLAS packs ``W`` at about three times the cost per element
    # of the rows of ``o_prev``, which each column tile packs again).
    return min(n, 256, _cdiv(_cdiv(n, 2), 16) * 16)


@jit_serial
def _n_tiles(rows, cols, inner, whole_rows):
    """Number of tiles of a ``rows x cols`` product with inner dimension ``inner``
    (``whole_rows``: one tile spans every column, as the output layer needs)."""
    tc = cols if whole_rows else tile_cols(rows, cols, inner)
    return _cdiv(rows, tile_rows(rows, inner)) * _cdiv(cols, tc)


@jit_serial
def _tile_bounds(t, rows, cols, inner, whole_rows):
    """``(r0, r1, c0, c1)``: the rows and columns of tile ``t`` (tiles numbered row-major)."""
    tr = tile_rows(rows, inner)
    tc = cols if whole_rows else tile_cols(rows, cols, inner)
    n_col_tiles = _cdiv(cols, tc)
    r0 = (t // n_col_tiles) * tr
    c0 = (t % n_col_tiles) * tc
    return r0, min(rows, r0 + tr), c0, min(cols, c0 + tc)


# ---------------------------------------------------------------------------
# Activations, their derivatives (from the outputs) and the output layer
# ---------------------------------------------------------------------------

# Each helper below branches on the activation or loss code once per span of a row,
# then runs a tight loop: a call and a branch per element cost more than the arithmetic.
# Element loops index a view from 0 (``v = buf[off:off + n]; v[j]``): with an index that
# may be negative Numba emits its wrap-around fix-up per element, and LLVM then does not
# vectorise the loop (measured 4.6x slower on a 64-wide row of multiply-adds).

@jit_serial(apart=True)
def _activate_inplace(code, buf, off, n):
    """``buf[off:off+n] = g(buf[off:off+n])`` for a hidden or output activation (not softmax).
    Written: ``buf``."""
    span = buf[off:off + n]
    if code == RELU:
        zero = cast_like(0.0, buf)  # a select in the buffer's precision: vectorises
        for j in range(n):
            v = span[j]
            span[j] = v if v > 0 else zero
    elif code == SIGMOID:
        for j in range(n):
            a = span[j]
            e = poly_exp(-abs(a))  # never overflows
            r = 1.0 / (1.0 + e)
            span[j] = r if a >= 0 else e * r
    elif code == TANH:
        for j in range(n):
            span[j] = np.tanh(span[j])
    elif code == EXP:
        for j in range(n):
            span[j] = poly_exp(span[j])


@jit_serial(apart=True)
def _scale_by_derivative(code, o, o_off, d, d_off, n):
    """``d[d_off:d_off+n] *= g'(a)``, with ``g'`` written through the outputs ``o = g(a)``
    (relu's derivative at 0 is 0). Written: ``d``."""
    out = o[o_off:o_off + n]
    err = d[d_off:d_off + n]
    if code == RELU:
        zero = cast_like(0.0, d)  # a select in the buffer's precision: vectorises
        for j in range(n):
            err[j] = err[j] if out[j] > 0 else zero
    elif code == SIGMOID:
        for j in range(n):
            oj = out[j]
            err[j] *= oj * (1.0 - oj)
    elif code == TANH:
        for j in range(n):
            oj = out[j]
            err[j] *= 1.0 - oj * oj
    elif code == EXP:
        for j in range(n):
            err[j] *= out[j]


@jit_serial
def _softplus(a):
    # log(1 + exp(a)) without overflow for large |a|.
    return max(a, 0.0) + np.log1p(np.exp(-abs(a)))


@jit_serial(apart=True)
def _hidden_epilogue(code, theta, b_o, buf, off, ld, rows, c0, c1):
    """``buf[r, c] = g(buf[r, c] + b[c])`` for a tile (in place)."""
    n = c1 - c0
    bias = theta[b_o + c0:b_o + c1]
    for r in range(rows):
        row = off + r * ld
        span = buf[row + c0:row + c1]
        if code == RELU:  # the common case in one pass over the tile
            zero = cast_like(0.0, buf)
            for c in range(n):
                v = span[c] + bias[c]
                span[c] = v if v > 0 else zero
        else:
            for c in range(n):
                span[c] += bias[c]
            _activate_inplace(code, buf, row + c0, n)


@jit_serial(inline=True)
def _row_max(v):
    """The largest element of the 1-D view ``v``."""
    vmax = v[0]
    for c in range(1, v.shape[0]):
        vmax = max(vmax, v[c])
    return vmax


@jit_serial(apart=True)
def _output_rows(out_code, loss_code, with_loss, with_delta, weighted, theta, b_o, n_out,
                 r0, r1, logits, ybuf, swbuf, o_buf, o_off, delta_buf, d_off, row_loss):
    """Finish output rows ``r0:r1``: add biases, apply ``g_o``, and optionally compute the
    output error terms and each row's error. The rows are contiguous in every buffer
    (output row ``r`` at ``o_buf[o_off + r * n_out]``, its error terms at
    ``delta_buf[d_off + r * n_out]``).

    Written: ``logits`` (activation sums), ``o_buf`` (outputs), and when asked ``delta_buf``
    and ``row_loss``. With ``weighted`` both are multiplied by the row's sample weight.
    """
    bias = theta[b_o:b_o + n_out]
    no_shift = cast_like(0.0, logits)
    for r in range(r0, r1):
        z = logits[r * n_out:(r + 1) * n_out]
        out = o_buf[o_off + r * n_out:o_off + (r + 1) * n_out]
        for c in range(n_out):
            z[c] += bias[c]
        # Softmax takes exp(z - max z), the exp below over the whole block.
        shift = _row_max(z) if out_code == SOFTMAX else no_shift
        for c in range(n_out):
            out[c] = z[c] - shift
    # An elementwise g_o (and below, its derivative) in one call over all the rows: a call
    # per row cost more than a 1-wide row's arithmetic (2-4-1 network), and the exp of
    # softmax vectorises over a whole block where a row is often narrower than a vector.
    _activate_inplace(EXP if out_code == SOFTMAX else out_code, o_buf, o_off + r0 * n_out,
                      (r1 - r0) * n_out)
    for r in range(r0, r1):
        z = logits[r * n_out:(r + 1) * n_out]
        out = o_buf[o_off + r * n_out:o_off + (r + 1) * n_out]
        total = 1.0
        if out_code == SOFTMAX:
            total = 0.0
            for c in range(n_out):
                total += out[c]
            for c in range(n_out):
                out[c] /= total
        if not (with_loss or with_delta):
            continue  # prediction: no log of the total
        log_total = 0.0
        if out_code == SOFTMAX:
            log_total = _row_max(z) + np.log(total)  # again: cheaper than a buffer for it
        y = ybuf[r * n_out:(r + 1) * n_out]
        err = 0.0
        if loss_code == MSE:
            for c in range(n_out):
                diff = out[c] - y[c]
                err += 0.5 * diff * diff
        elif loss_code == CROSS_ENTROPY:
            for c in range(n_out):
                if y[c] != 0:
                    err -= y[c] * (z[c] - log_total)
        elif loss_code == BINARY_CROSS_ENTROPY:
            for c in range(n_out):
                err += _softplus(z[c]) - y[c] * z[c]
        elif loss_code == CROSS_ENTROPY_CLIPPED or loss_code == BINARY_CROSS_ENTROPY_CLIPPED:
            eps = np.finfo(o_buf.dtype).eps
            for c in range(n_out):
                p = min(max(out[c], eps), 1.0 - eps)
                if y[c] != 0:
                    err -= y[c] * np.log(p)
                if loss_code == BINARY_CROSS_ENTROPY_CLIPPED and y[c] != 1:
                    err -= (1.0 - y[c]) * np.log(1.0 - p)
        else:  # POISSON: half deviance y log(y / yhat) - y + yhat, with log(yhat) = z
            for c in range(n_out):
                if y[c] > 0:
                    err += y[c] * np.log(y[c])
                err += out[c] - y[c] - y[c] * z[c]
        if with_loss:
            row_loss[r] = err * (swbuf[r] if weighted else 1.0)
        if with_delta:
            d = delta_buf[d_off + r * n_out:d_off + (r + 1) * n_out]
            for c in range(n_out):
                d[c] = out[c] - y[c]
    if not with_delta:
        return
    # MSE is not a canonical pair unless the output is the identity: times g_o'(a), then
    # the sample weight (the order of the per-row code this replaces).
    if loss_code == MSE:
        _scale_by_derivative(out_code, o_buf, o_off + r0 * n_out, delta_buf,
                             d_off + r0 * n_out, (r1 - r0) * n_out)
    if weighted:
        for r in range(r0, r1):
            w = swbuf[r]
            d = delta_buf[d_off + r * n_out:d_off + (r + 1) * n_out]
            for c in range(n_out):
                d[c] *= w


# ---------------------------------------------------------------------------
# Tiles of the three products of backpropagation
# ---------------------------------------------------------------------------

# The tile functions and the task dispatchers below are inlined (Numba IR) into the
# team's job runner and the serial passes, like the block passes into the entry points
# (see "Forward and backward passes"): each compiled level re-optimises its whole call
# tree. Measured, empty cache: 784-128-10 first fit on 2 threads 14.0 -> 12.5-12.9 s,
# 64-64-10 on serial tiles 9.9 -> 8.0 s; run times unchanged.

@jit_serial(inline=True)
def _forward_tile(t, m, n_in, n_out, is_output, code, theta, w_o, b_o,
                  src, src_off, src_ld, dst, dst_off, scalars, check, flags):
    """Tile ``t`` of ``a = o_prev @ W + b, o = g(a)``; writes ``dst`` (and ``scalars``).

    For the output layer the tile spans whole rows (``dst`` is ``logits``) and the
    caller finishes the rows with ``_output_rows``. With ``check``, ``flags[r] = 0`` for
    each row ``r`` of the tile with a sum ``o_prev @ W`` that is not finite (see
    ``predict_rows``); ``flags`` is not touched otherwise.
    """
    r0, r1, c0, c1 = _tile_bounds(t, m, n_out, n_in, is_output)
    rows = r1 - r0
    no_trans = np.bool_(False)  # typed, not literal: this body is inlined
    gemm_rm_apart(no_trans, no_trans, rows, c1 - c0, n_in, 1.0, src, src_off + r0 * src_ld,
                  src_ld, theta, w_o + c0, n_out, 0.0, dst, dst_off + r0 * n_out + c0, n_out,
                  scalars)
    if check:  # before the bias and g, which may hide a NaN (relu(NaN) is 0)
        for r in range(r0, r1):
            if not _span_finite(dst, dst_off + r * n_out + c0, c1 - c0):
                flags[r] = 0
    if not is_output:
        _hidden_epilogue(code, theta, b_o, dst, dst_off + r0 * n_out, n_out, rows, c0, c1)
    return r0, r0 + rows


@jit_serial(inline=True)
def _weight_grad_tile(t, m, n_in, n_out, alpha, beta, src, src_off, src_ld,
                      delta, d_off, grad, w_o, b_o, scalars):
    """Tile ``t`` of ``dW = alpha * o_prev^T @ delta + beta * dW``; the tiles of the first
    row block also own their columns of ``db = alpha * sum_rows delta + beta * db``.
    Writes ``grad`` (and ``scalars``)."""
    trans, no_trans = np.bool_(True), np.bool_(False)  # typed, not literal: inlined
    i0, i1, c0, c1 = _tile_bounds(t, n_in, n_out, m, no_trans)
    gemm_rm_apart(trans, no_trans, i1 - i0, c1 - c0, m, alpha, src, src_off + i0, src_ld,
                  delta, d_off + c0, n_out, beta, grad, w_o + i0 * n_out + c0, n_out, scalars)
    if i0 == 0:
        _bias_grad_columns(m, n_out, c0, c1, alpha, beta, delta, d_off, grad, b_o)


# Columns per vector accumulator in the bias gradient. Measured against the scalar
# accumulators it replaces (one core, float32, us per call): 32 x 64 block 0.59 -> 0.16,
# 128 x 128 4.6 -> 1.2, 256 x 1024 80 -> 22; with 16 or 32 columns the last was 102 and
# 52 us (each row's short span of a 4 KiB-strided block is then a poor read), with 128
# columns as with 64.
COLUMN_GROUP = 64


@jit_serial(apart=True)
def _bias_grad_columns(m, n_out, c0, c1, alpha, beta, delta, d_off, grad, b_o):
    """``db[c] = alpha * sum_r delta[r, c] + beta * db[c]`` for ``c0 <= c < c1``.

    Each column is summed in float64 over the rows in order (the same bits on every thread
    count), ``COLUMN_GROUP`` columns at a time in one vector accumulator, then eight, so
    that the walk down the row-major ``delta`` reads whole cache lines; the last columns
    one by one, in the same order. Written: ``grad``.
    """
    keep = beta != 0
    c = c0
    while c + COLUMN_GROUP <= c1:
        scaled_column_sums(delta, d_off + c, n_out, m, alpha, beta, keep, grad, b_o + c,
                           COLUMN_GROUP)
        c += COLUMN_GROUP
    while c + 8 <= c1:
        scaled_column_sums(delta, d_off + c, n_out, m, alpha, beta, keep, grad, b_o + c, 8)
        c += 8
    for j in range(c, c1):
        s = 0.0
        for r in range(m):
            s += delta[d_off + r * n_out + j]
        grad[b_o + j] = alpha * s + (beta * grad[b_o + j] if keep else 0.0)


@jit_serial(no=types.boolean)
def _n_weight_grad_tiles(m, n_in, n_out):
    no = False
    return _n_tiles(n_in, n_out, m, no)


@jit_serial(no=types.boolean)
def _n_delta_tiles(m, n_in, n_out):
    no = False
    return _n_tiles(m, n_in, n_out, no)


@jit_serial(inline=True)
def _delta_tile(t, m, n_in, n_out, code, theta, w_o, delta, d_off, o_prev, p_off,
                delta_prev, scalars):
    """Tile ``t`` of the delta recursion ``delta_prev = g'(o_prev) * (delta @ W^T)``.
    Writes ``delta_prev`` (and ``scalars``)."""
    trans, no_trans = np.bool_(True), np.bool_(False)  # typed, not literal: inlined
    r0, r1, c0, c1 = _tile_bounds(t, m, n_in, n_out, no_trans)
    gemm_rm_apart(no_trans, trans, r1 - r0, c1 - c0, n_out, 1.0, delta, d_off + r0 * n_out,
                  n_out, theta, w_o + c0 * n_out, n_out, 0.0, delta_prev,
                  p_off + r0 * n_in + c0, n_in, scalars)
    if code == IDENTITY:
        return
    if c0 == 0 and c1 == n_in:  # whole rows, contiguous: one call for the tile
        start = p_off + r0 * n_in
        _scale_by_derivative(code, o_prev, start, delta_prev, start, (r1 - r0) * n_in)
        return
    for r in range(r0, r1):
        row = p_off + r * n_in + c0
        _scale_by_derivative(code, o_prev, row, delta_prev, row, c1 - c0)


# ---------------------------------------------------------------------------
# Layer passes: each is one job of the thread team (or a serial pass)
# ---------------------------------------------------------------------------

@jit_serial(inline=True)
def _forward_layer_tasks(t, m, n_in, n_out, is_output, code, theta, w_o, b_o, src, src_off,
                         src_ld, dst, dst_off, sc, out_code, loss_code, with_loss,
                         with_delta, weighted, ybuf, swbuf, o_buf, o_off, delta_buf,
                         d_off, row_loss, check, flags):
    """Forward tile ``t`` (and, on the output layer, its rows' epilogue); ``sc`` is the
    running thread's two scratch scalars; ``check`` and ``flags`` as in ``_forward_tile``."""
    r0, r1 = _forward_tile(t, m, n_in, n_out, is_output, code, theta, w_o, b_o,
                           src, src_off, src_ld, dst, dst_off, sc, check, flags)
    if is_output:
        _output_rows(out_code, loss_code, with_loss, with_delta, weighted, theta, b_o, n_out,
                     r0, r1, dst, ybuf, swbuf, o_buf, o_off, delta_buf, d_off, row_loss)


# Each pass below exists as a serial loop over its tasks (``*_ser``) and as a team job
# (``_team_tasks``); both call the same task functions. The serial path stays apart from
# the team's so that it compiles none of the team's machinery (job slots, claims, the
# job runner): with an empty cache, 784-128-10's first fit took 7.3-8.8 s on the serial
# path and 9.0-9.7 s on the threaded one (alternating, float32), and every network too
# small for threads takes the serial path.

@jit_serial
def _forward_layer_ser(m, n_in, n_out, is_output, code, theta, w_o, b_o, src, src_off, src_ld,
                       dst, dst_off, scalars, out_code, loss_code, with_loss, with_delta,
                       weighted, ybuf, swbuf, o_buf, o_off, delta_buf, d_off, row_loss,
                       check, flags):
    sc = scalars[0:2]
    for t in range(_n_tiles(m, n_out, n_in, is_output)):
        _forward_layer_tasks(t, m, n_in, n_out, is_output, code, theta, w_o, b_o,
                             src, src_off, src_ld, dst, dst_off, sc, out_code, loss_code,
                             with_loss, with_delta, weighted, ybuf, swbuf, o_buf, o_off,
                             delta_buf, d_off, row_loss, check, flags)


@jit_serial
def _backward_region_counts(l, m, sizes):
    """Tile counts of backward region ``l``: ``(n_dt, n_wa, n_wb)``, the delta tiles of
    ``delta_{l-1}`` (none for ``l == 0``), the weight-gradient tiles of layer ``l + 1``
    (none for the output layer) and, in the last region (``l == 0``), of layer 0."""
    n_layers = sizes.shape[0] - 1
    n_dt = _n_delta_tiles(m, sizes[l], sizes[l + 1]) if l > 0 else 0
    n_wa = _n_weight_grad_tiles(m, sizes[l + 1], sizes[l + 2]) if l + 1 < n_layers else 0
    n_wb = _n_weight_grad_tiles(m, sizes[0], sizes[1]) if l == 0 else 0
    return n_dt, n_wa, n_wb


@jit_serial(inline=True)
def _spread_slot(t, n_few, total):
    """Slot ``t`` of ``total`` slots, where ``n_few`` slots of one kind are spread evenly
    among the others: ``(True, i)`` for the ``i``-th of those, else ``(False, j)`` for the
    ``j``-th of the rest."""
    before = (t * n_few) // total
    if ((t + 1) * n_few) // total > before:
        return True, before
    return False, t - before


@jit_serial(inline=True)
def _backward_region_task(t, l, n_dt, n_wa, n_wb, m, sizes, w_off, b_off, act_off, code,
                          alpha, beta, theta, acts, deltas, grad, sc):
    """Task ``t`` of backward region ``l`` (see ``backward_block``); ``sc`` is the running
    thread's two scratch scalars.

    The ``n_dt`` delta tiles are spread evenly among the weight-gradient tiles (slot ``t``
    holds a delta tile when ``t * n_dt // total`` steps up), and layer ``l + 1``'s among
    layer 0's, because each team member first claims a contiguous run of tasks (its home
    range, ``fastbp._team``) and the kinds differ in cost. The mapping is fixed, so each
    tile's bits never change.
    """
    is_delta, k = _spread_slot(t, n_dt, n_dt + n_wa + n_wb)
    if is_delta:
        _delta_tile(k, m, sizes[l], sizes[l + 1], code, theta, w_off[l], deltas,
                    act_off[l + 1], acts, act_off[l], deltas, sc)
        return
    is_next, k = _spread_slot(k, n_wa, n_wa + n_wb)
    g = l + 1 if is_next else 0  # the layer whose weight gradient this task computes
    n_in = sizes[g]
    _weight_grad_tile(k, m, n_in, sizes[g + 1], alpha, beta, acts, act_off[g], n_in, deltas,
                      act_off[g + 1], grad, w_off[g], b_off[g], sc)


# Region l computes delta_{l-1} (which reads W_l) together with the gradient of layer
# l + 1, whose weights the delta recursion no longer needs: one team job per layer, and
# no region writes weights that another task of it reads, so the SGD step can be
# written straight into theta (``backward_block``).
@jit_serial
def _backward_region_ser(l, m, sizes, w_off, b_off, act_off, code, alpha, beta, theta, acts,
                         deltas, grad, scalars):
    n_dt, n_wa, n_wb = _backward_region_counts(l, m, sizes)
    sc = scalars[0:2]
    for t in range(n_dt + n_wa + n_wb):
        _backward_region_task(t, l, n_dt, n_wa, n_wb, m, sizes, w_off, b_off, act_off, code,
                              alpha, beta, theta, acts, deltas, grad, sc)


# Inlined (Numba IR) into both gather loops: called per row, with ten arguments passed
# through the stack, it cost W2 (64 floats per row) about 3% of its time (0.0309-0.0314 ->
# 0.0297-0.0309 s, medians of 9, alternated).
@jit_serial(inline=True)
def _gather_row(r, X, Y, sw, weighted, order, start, acts, ybuf, swbuf):
    """Copy row ``order[start + r]`` of ``X``/``Y`` (and its weight) to row ``r`` of the
    block buffers (unchecked: the first layer's products check the rows through their
    sums, see ``_tiled_batch``). Written: ``acts``, ``ybuf``, ``swbuf``."""
    i = order[start + r]
    n_in = X.shape[1]
    n_out = Y.shape[1]
    x_row = X[i]
    y_row = Y[i]
    x_dst = acts[r * n_in:(r + 1) * n_in]
    y_dst = ybuf[r * n_out:(r + 1) * n_out]
    for c in range(n_in):
        x_dst[c] = x_row[c]
    for c in range(n_out):
        y_dst[c] = y_row[c]
    if weighted:
        swbuf[r] = sw[i]


@jit_serial
def _gather_ser(m, X, Y, sw, weighted, order, start, acts, ybuf, swbuf):
    for r in range(m):
        _gather_row(r, X, Y, sw, weighted, order, start, acts, ybuf, swbuf)


# ---------------------------------------------------------------------------
# Optimizer update (fixed chunks of theta, one thread each)
# ---------------------------------------------------------------------------

@jit_serial(apart=True)
def _update_chunks(ch0, ch1, opt_code, lr, mu, beta1, beta2, eps, adam_lr, l2_scale, chunks,
                   grad, theta, opt_m, opt_v, weight_sq):
    """Update ``theta[start:stop]`` of chunks ``ch0 .. ch1 - 1`` in turn (a branch per chunk,
    then a tight loop; one out-of-line call for all the chunks a thread updates); with an
    L2 penalty, also store each chunk's sum of squared new weights."""
    # Arithmetic in theta's precision (as NumPy does for float32 arrays and Python floats);
    # float64 scalars would turn every float32 loop into conversions and half-width vectors.
    lr_t, mu_t = cast_like(lr, theta), cast_like(mu, theta)
    b1, c1 = cast_like(beta1, theta), cast_like(1.0 - beta1, theta)
    b2, c2 = cast_like(beta2, theta), cast_like(1.0 - beta2, theta)
    step_size, eps_t = cast_like(adam_lr, theta), cast_like(eps, theta)
    if opt_code == SGD and l2_scale == 0 and ch1 > ch0:
        # Every chunk is then updated alike: one loop over their span (the chunks tile
        # theta in order), the same arithmetic as below, without a set-up per chunk.
        # Measured on W1 (17 parameters in 4 chunks, a step per 4 rows): 0.0050-0.0055 ->
        # 0.0046-0.0052 s (medians of 21, alternated).
        start, stop = chunks[ch0, 0], chunks[ch1 - 1, 1]
        w, g = theta[start:stop], grad[start:stop]
        no_l2 = cast_like(0.0, theta)
        for i in range(stop - start):
            w[i] -= lr_t * (g[i] + no_l2 * w[i])
        for ch in range(ch0, ch1):
            weight_sq[ch] = 0.0
        return
    for ch in range(ch0, ch1):
        start, stop, is_weight = chunks[ch, 0], chunks[ch, 1], chunks[ch, 2]
        n = stop - start
        w, g = theta[start:stop], grad[start:stop]
        l2s = cast_like(l2_scale if is_weight else 0.0, theta)
        if opt_code == SGD:
            for i in range(n):
                w[i] -= lr_t * (g[i] + l2s * w[i])
        elif opt_code == MOMENTUM:
            vel = opt_m[start:stop]
            for i in range(n):
                v = mu_t * vel[i] - lr_t * (g[i] + l2s * w[i])
                vel[i] = v
                w[i] += v
        elif opt_code == NESTEROV:
            vel = opt_m[start:stop]
            for i in range(n):
                gi = g[i] + l2s * w[i]
                v = mu_t * vel[i] - lr_t * gi
                vel[i] = v
                w[i] += mu_t * v - lr_t * gi
        else:  # ADAM
            mom1, mom2 = opt_m[start:stop], opt_v[start:stop]
            for i in range(n):
                gi = g[i] + l2s * w[i]
                m1 = b1 * mom1[i] + c1 * gi
                m2 = b2 * mom2[i] + c2 * gi * gi
                mom1[i] = m1
                mom2[i] = m2
                w[i] -= step_size * m1 / (np.sqrt(m2) + eps_t)
        weight_sq[ch] = 0.0
        if l2s > 0:
            # Four running sums break the add-latency chain; their order is fixed.
            s0 = s1 = s2 = s3 = 0.0
            i = 0
            while i + 4 <= n:
                s0 += w[i] * w[i]
                s1 += w[i + 1] * w[i + 1]
                s2 += w[i + 2] * w[i + 2]
                s3 += w[i + 3] * w[i + 3]
                i += 4
            while i < n:
                s0 += w[i] * w[i]
                i += 1
            weight_sq[ch] = (s0 + s1) + (s2 + s3)


@jit_serial(inline=True)
def _update_ser(opt_code, lr, mu, beta1, beta2, eps, adam_lr, l2_scale, chunks, grad,
                theta, opt_m, opt_v, weight_sq):
    _update_chunks(np.int64(0), chunks.shape[0], opt_code, lr, mu, beta1, beta2, eps,
                   adam_lr, l2_scale, chunks, grad, theta, opt_m, opt_v, weight_sq)


@jit_serial(inline=True)
def apply_update(opt_code, lr, mu, beta1, beta2, eps, l2_scale, step, chunks, grad, theta,
                 opt_m, opt_v, weight_sq, fused, tiled, threads, team):
    """One optimizer step ``theta <- theta - lr * (grad + l2_scale * W)`` (or its momentum,
    Nesterov or Adam form); ``step`` is the 1-based step number (Adam's bias correction).
    Serial for the ``fused`` and ``tiled`` paths, a job of the thread ``team`` for
    ``threads``.

    Written: ``theta``, ``opt_m``/``opt_v`` (optimizer state), ``weight_sq`` (per-chunk
    sums of the squared new weights, for the next step's L2 penalty).
    """
    adam_lr = 0.0
    if opt_code == ADAM:
        adam_lr = lr * np.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
    if threads is not None:
        _team_update(team, opt_code, lr, mu, beta1, beta2, eps, adam_lr, l2_scale)
    if fused is not None or tiled is not None:
        _update_ser(opt_code, lr, mu, beta1, beta2, eps, adam_lr, l2_scale, chunks, grad,
                    theta, opt_m, opt_v, weight_sq)


# ---------------------------------------------------------------------------
# Small networks: each row through the whole network, no tiles, no BLAS
# ---------------------------------------------------------------------------

# For small layers the tiled passes cost more in scaffolding (tile bounds, product set-up,
# one call per tile and epilogue) than in arithmetic: a 2-4-1 network's full-batch step
# took 1.5 us there against 0.75 us here (float32, measured). The fused path below runs
# each layer over the block's rows with loops over contiguous weight rows (which LLVM
# vectorises) and no products or tiles, accumulating each row's gradient in row order. It
# always runs serially, and the engine chooses it from the layer sizes only, so its
# results too are independent of the thread count.

@jit_serial(apart=True)
def _runtime_zero(like):
    """Zero in the dtype of the array ``like``, as a value its callers' optimiser cannot
    see. LLVM turns a loop that stores a constant zero into a call to ``memset``: for the
    few elements of a small network's row that call (and the register spills around it)
    cost more than the stores. Measured on W1 (2-4-1, float32, the output rows' and the
    gradient's zero fills): 0.0051-0.0055 -> 0.0049-0.0051 s (medians of 21, alternated)."""
    return cast_like(0.0, like)


@jit_serial(inline=True)
def _fused_layer_input(l, r, n_in, src, src_offs, acts, act_off):
    """Row ``r``'s inputs to layer ``l`` on the fused path: its row of ``X`` (at
    ``src_offs[r]``) for the first layer, else its outputs of layer ``l - 1``."""
    if l == 0:
        return src[src_offs[r]:src_offs[r] + n_in]
    return acts[act_off[l] + r * n_in:act_off[l] + (r + 1) * n_in]


@jit_serial(apart=True)
def _fused_forward(m, src, src_offs, theta, sizes, w_off, b_off, act_off, hidden_code, acts,
                   logits):
    """Rows ``0..m-1`` (row ``r``'s inputs at ``src[src_offs[r]:src_offs[r] + sizes[0]]``):
    hidden outputs into ``acts``, the output layer's activation sums without biases (as
    ``_output_rows`` expects) into ``logits``. Written: ``acts``, ``logits``."""
    # Loops index views from 0: Numba then drops its negative-index fix-up, which
    # otherwise keeps LLVM from vectorising (measured 4.6x on a 64-wide row).
    n_layers = sizes.shape[0] - 1
    zero = _runtime_zero(theta)  # no memset call per output row (see _runtime_zero)
    # Layer by layer over the block's rows (each row's arithmetic is unchanged): one
    # activation call per layer instead of one per row.
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        is_output = l == n_layers - 1
        w = theta[w_off[l]:w_off[l] + n_in * n_out]
        bias = theta[b_off[l]:b_off[l] + n_out]
        for r in range(m):
            o_in = _fused_layer_input(l, r, n_in, src, src_offs, acts, act_off)
            if is_output:
                a_out = logits[r * n_out:(r + 1) * n_out]
                for j in range(n_out):
                    a_out[j] = zero
            else:
                a_out = acts[act_off[l + 1] + r * n_out:act_off[l + 1] + (r + 1) * n_out]
                for j in range(n_out):
                    a_out[j] = bias[j]
            for i in range(n_in):
                x = o_in[i]
                if x != 0:  # relu outputs and many inputs are zero: skip their weight rows
                    w_row = w[i * n_out:(i + 1) * n_out]
                    for j in range(n_out):
                        a_out[j] += x * w_row[j]
        if not is_output:
            _activate_inplace(hidden_code, acts, act_off[l + 1], m * n_out)


@jit_serial(apart=True)
def _fused_backward(m, src, src_offs, theta, sizes, w_off, b_off, act_off, hidden_code, acts,
                    deltas, grad):
    """Rows ``0..m-1`` whose output error terms (already scaled by each row's share of
    the mean) are in ``deltas``: the delta recursion and ``grad += dE_r/dtheta``, row
    after row. Written: ``deltas`` (hidden layers), ``grad``."""
    n_layers = sizes.shape[0] - 1
    for l in range(n_layers - 1, -1, -1):
        n_in, n_out = sizes[l], sizes[l + 1]
        w = theta[w_off[l]:w_off[l] + n_in * n_out]
        g_w = grad[w_off[l]:w_off[l] + n_in * n_out]
        g_bias = grad[b_off[l]:b_off[l] + n_out]
        for r in range(m):
            o_in = _fused_layer_input(l, r, n_in, src, src_offs, acts, act_off)
            d_out = deltas[act_off[l + 1] + r * n_out:act_off[l + 1] + (r + 1) * n_out]
            for j in range(n_out):
                g_bias[j] += d_out[j]
            for i in range(n_in):
                x = o_in[i]
                if x != 0:
                    g_row = g_w[i * n_out:(i + 1) * n_out]
                    for j in range(n_out):
                        g_row[j] += x * d_out[j]
            if l > 0:
                d_in = deltas[act_off[l] + r * n_in:act_off[l] + (r + 1) * n_in]
                for i in range(n_in):
                    if hidden_code == RELU and not o_in[i] > 0:
                        d_in[i] = 0.0  # relu'(a) = 0: the sum is not needed
                        continue
                    w_row = w[i * n_out:(i + 1) * n_out]
                    s = cast_like(0.0, deltas)
                    for j in range(n_out):
                        s += w_row[j] * d_out[j]
                    d_in[i] = s
        if l > 0 and hidden_code != RELU:
            _scale_by_derivative(hidden_code, acts, act_off[l], deltas, act_off[l], m * n_in)


@jit_serial(inline=True, yes=types.boolean, row0=types.int64)
def _fused_block(m, x_flat, Y, sw, weighted, order, start, with_gradient, alpha, theta, sizes,
                 w_off, b_off, act_off, hidden_code, out_code, loss_code, acts, logits,
                 ybuf, swbuf, deltas, row_loss, row_offs, grad):
    """Error terms, errors and (with ``with_gradient``) ``grad += alpha * dE/dtheta`` for
    the rows ``X[order[start:start + m]]`` (read in place from ``x_flat``, ``X`` flattened).
    Returns ``False`` (before any arithmetic) when one of these rows of ``X`` is not
    finite, else ``True``.

    Written: ``acts``, ``logits``, ``ybuf``, ``swbuf``, ``deltas``, ``row_loss``,
    ``row_offs`` (each row's offset in ``X``), ``grad``.
    """
    n_layers = sizes.shape[0] - 1
    n_in, n_out = sizes[0], sizes[n_layers]
    o_off = act_off[n_layers]
    yes, row0 = np.bool_(True), np.int64(0)  # typed, not literal: this body is inlined
    finite = True
    for r in range(m):
        i = order[start + r]
        row_offs[r] = i * n_in
        x_row = x_flat[i * n_in:(i + 1) * n_in]
        for c in range(n_in):
            finite &= np.isfinite(x_row[c])
        for c in range(n_out):
            ybuf[r * n_out + c] = Y[i, c]
        if weighted:
            swbuf[r] = sw[i]
    if not finite:
        return False
    _fused_forward(m, x_flat, row_offs, theta, sizes, w_off, b_off, act_off, hidden_code,
                   acts, logits)
    _output_rows(out_code, loss_code, yes, with_gradient, weighted, theta, b_off[n_layers - 1],
                 n_out, row0, m, logits, ybuf, swbuf, acts, o_off, deltas, o_off, row_loss)
    if with_gradient:
        # Scaling the output error terms by alpha scales every later error term and
        # gradient contribution by it too: the recursion is linear in them.
        a = cast_like(alpha, deltas)
        for k in range(o_off, o_off + m * n_out):
            deltas[k] *= a
        _fused_backward(m, x_flat, row_offs, theta, sizes, w_off, b_off, act_off,
                        hidden_code, acts, deltas, grad)
    return True


@jit_serial
def _weight_sum(sw, weighted, order, start, stop):
    """Sum of the sample weights of the rows ``order[start:stop]`` (their count without
    weights)."""
    if not weighted:
        return float(stop - start)
    total = 0.0
    for r in range(start, stop):
        total += sw[order[r]]
    return total


@jit_serial(inline=True)
def _fused_batch(x_flat, Y, sw, weighted, order, start, stop, with_gradient, theta, sizes,
                 w_off, b_off, act_off, hidden_code, out_code, loss_code, block_rows, acts,
                 logits, ybuf, swbuf, deltas, row_loss, row_offs, grad):
    """``batch_loss_and_gradient`` on the fused small-network path (``x_flat``: ``X``
    flattened, which the callers do once: a reshape calls into Numba's runtime). Inlined
    (at Numba IR level) into both callers: ``train_steps`` then calls the fused passes
    directly, which saves a call level per step and a level of LLVM re-optimisation at
    compile time."""
    weight_sum = _weight_sum(sw, weighted, order, start, stop)
    alpha = 1.0 / weight_sum if weight_sum > 0 else 0.0
    if with_gradient:
        zero = _runtime_zero(grad)  # no memset call per step (see _runtime_zero)
        for i in range(grad.shape[0]):
            grad[i] = zero
    loss_sum = 0.0
    for b0 in range(start, stop, block_rows):
        m = min(stop, b0 + block_rows) - b0
        if not _fused_block(m, x_flat, Y, sw, weighted, order, b0, with_gradient, alpha, theta,
                            sizes, w_off, b_off, act_off, hidden_code, out_code, loss_code,
                            acts, logits, ybuf, swbuf, deltas, row_loss, row_offs, grad):
            return loss_sum, weight_sum, False
        for r in range(m):
            loss_sum += row_loss[r]
    return loss_sum, weight_sum, True


# ---------------------------------------------------------------------------
# Forward and backward passes over a block of rows
# ---------------------------------------------------------------------------

# forward_block, backward_block and _tiled_batch are inlined (Numba IR) into the entry
# points: every compiled level re-optimises its whole call tree, and these three levels
# cost 1.8 s of a 784-128-10 network's first fit on 2 threads (15.8 -> 14.0 s, empty
# cache), 1.7 s with serial tiles (64-64-10: 11.6 -> 9.9 s).
@jit_serial(inline=True)
def forward_block(m, theta, sizes, w_off, b_off, act_off, hidden_code, out_code, loss_code,
                  with_loss, with_delta, weighted, src, src_off, src_ld, acts, logits, ybuf,
                  swbuf, o_buf, o_off, deltas, row_loss, scalars, serial, threads, team,
                  from_x, to_out, flags):
    """Forward phase for ``m`` rows whose inputs start at ``src[src_off]`` (row stride
    ``src_ld``): activation sums and outputs layer by layer, then the output layer's
    outputs into ``o_buf`` and, when asked, its error terms and the rows' errors.

    The first layer's tiles check the inputs through their sums (see ``predict_rows``):
    they set ``flags[r] = 0`` for each row ``r`` with a sum ``o_prev @ W`` that is not finite,
    and leave the other slots as they are (the team's jobs take ``flags`` from the team).

    On the ``threads`` path the team's jobs name the buffers instead: ``from_x`` says
    that ``src`` is the team's flattened ``X`` (else ``acts``), ``to_out`` that ``o_buf`` is
    its output array (else ``acts``).

    Written: ``acts`` (hidden outputs), ``logits``, ``o_buf``, and with ``with_delta`` /
    ``with_loss`` the output layer's block of ``deltas`` / ``row_loss``; ``scalars``;
    ``flags`` as above.
    """
    n_layers = sizes.shape[0] - 1
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        is_output = l == n_layers - 1
        if l == 0:
            s_buf, s_off, s_ld = src, src_off, src_ld
        else:
            s_buf, s_off, s_ld = acts, act_off[l], n_in
        dst = logits if is_output else acts
        dst_off = 0 if is_output else act_off[l + 1]
        if threads is not None:
            _team_forward(team, m, l, with_loss, with_delta, weighted, from_x and l == 0,
                          s_off, s_ld, to_out, o_off, hidden_code, out_code, loss_code)
        if serial is not None:
            _forward_layer_ser(m, n_in, n_out, is_output, hidden_code, theta, w_off[l],
                               b_off[l], s_buf, s_off, s_ld, dst, dst_off, scalars, out_code,
                               loss_code, with_loss, with_delta, weighted, ybuf, swbuf,
                               o_buf, o_off, deltas, act_off[n_layers], row_loss,
                               l == 0, flags)


@jit_serial(inline=True)
def backward_block(m, alpha, beta, theta, sizes, w_off, b_off, act_off, hidden_code, acts,
                   deltas, grad, scalars, serial, threads, team, into_theta):
    """Backward phase for ``m`` rows whose output error terms are in ``deltas``: the delta
    recursion down to the first hidden layer and ``grad = alpha * dE/dtheta + beta * grad``
    (``beta`` 0 overwrites, 1 accumulates over blocks).

    ``grad`` may be ``theta`` itself: with ``alpha = -lr * (the batch's 1 / weight sum)`` and
    ``beta = 1`` this applies the plain SGD step inside the products. Region ``l`` (layers
    from the output down) computes ``delta_{l-1}``, which reads ``W_l``, and writes the
    gradient of layer ``l + 1``, whose weights no later region reads. ``into_theta`` says
    that ``grad`` is ``theta`` (the team's jobs name the buffer).

    Written: ``deltas`` (hidden layers), ``grad``, ``scalars``.
    """
    for l in range(sizes.shape[0] - 2, -1, -1):
        if threads is not None:
            _team_backward(team, l, m, hidden_code, alpha, beta, into_theta)
        if serial is not None:
            _backward_region_ser(l, m, sizes, w_off, b_off, act_off, hidden_code, alpha, beta,
                                 theta, acts, deltas, grad, scalars)


@jit_serial(entry=True, with_loss=types.boolean, input_off=types.int64)
def batch_loss_and_gradient(X, Y, sw, weighted, order, start, stop, with_gradient, theta,
                            sizes, w_off, b_off, act_off, hidden_code, out_code, loss_code,
                            block_rows, acts, logits, ybuf, swbuf, deltas, row_loss,
                            row_offs, grad, scalars, fused, tiled, threads, tid, n_team, team_i,
                            team_f):
    """Error and mean gradient over the rows ``X[order[start:stop]]``.

    The rows are processed in blocks of ``block_rows`` (the gradient is accumulated over
    the blocks in order). Returns ``(loss_sum, weight_sum, finite)``: the sum of the rows'
    weighted errors and of their weights (the row count without weights), whose ratio is
    the mean error, and whether the rows of ``X`` were all finite (if not, the call stops
    at the first block holding a non-finite value and the sums are partial). With
    ``with_gradient``, ``grad`` receives the gradient of the mean error.

    Written: the work buffers ``acts``, ``logits``, ``ybuf``, ``swbuf``, ``deltas``,
    ``row_loss``, ``row_offs`` (the fused path's row offsets, the tiled path's per-row
    verdicts on the first layer's sums), ``scalars``, and ``grad``.

    ``fused``, ``tiled``, ``threads``: one is ``True``, the others ``None``. ``fused`` runs
    the small-network path (``_fused_block``, always serial), ``tiled`` the tiled passes
    serially, ``threads`` the tiled passes on a team of ``n_team`` threads: the caller
    runs member ``tid = 0``, and ``n_team - 1`` other threads call with the same arguments
    and ``tid = 1 .. n_team - 1`` (``team_i``/``team_f``: the team's shared slots, see
    ``fastbp._team``; zeroed before the call). Numba drops a branch on an argument typed
    None at compile time, so each compiled variant holds only its own path.
    """
    team = _team_of(threads, n_team, team_i, team_f, X, Y, sw, order, X.reshape(-1), acts,
                    theta, grad, sizes, w_off, b_off, act_off, row_offs.reshape((-1, 1)), acts,
                    logits, ybuf, swbuf, deltas, row_loss, row_offs, scalars, logits, logits,
                    team_f)
    if threads is not None and tid > 0:
        _team_worker(tid, team)
        return 0.0, 0.0, True
    if fused is not None:
        return _fused_batch(X.reshape(-1), Y, sw, weighted, order, start, stop, with_gradient,
                            theta, sizes, w_off, b_off, act_off, hidden_code, out_code,
                            loss_code, block_rows, acts, logits, ybuf, swbuf, deltas, row_loss,
                            row_offs, grad)
    loss_sum, weight_sum, finite = 0.0, 0.0, True
    if tiled is not None or threads is not None:
        loss_sum, weight_sum, finite = _tiled_batch(
            X, Y, sw, weighted, order, start, stop, with_gradient, theta, sizes, w_off,
            b_off, act_off, hidden_code, out_code, loss_code, block_rows, acts, logits, ybuf,
            swbuf, deltas, row_loss, row_offs, grad, scalars, tiled, threads, team, 0.0)
    if threads is not None:
        _team_stop(team)
    return loss_sum, weight_sum, finite


@jit_serial(inline=True)
def _tiled_batch(X, Y, sw, weighted, order, start, stop, with_gradient, theta, sizes, w_off,
                 b_off, act_off, hidden_code, out_code, loss_code, block_rows, acts, logits,
                 ybuf, swbuf, deltas, row_loss, finite, grad, scalars, serial, threads, team,
                 sgd_lr):
    """``batch_loss_and_gradient`` on the tiled path: gather, forward and backward phases
    block by block, serially (``serial``) or as jobs of the thread ``team`` (``threads``);
    one of the two flags is ``True``, the other ``None``. ``finite`` (int64, a slot per block
    row) receives the rows' verdicts on their first-layer sums (``forward_block``).

    ``sgd_lr > 0`` (only for batches of one block, ``stop - start <= block_rows``): instead
    of the gradient, apply the plain SGD step ``theta -= sgd_lr * gradient`` inside the
    weight-gradient products (``grad`` is not written). That saves the pass that zeroes
    the gradient before the products and the separate update pass over ``theta``.
    """
    n_layers = sizes.shape[0] - 1
    weight_sum = _weight_sum(sw, weighted, order, start, stop)
    alpha = 1.0 / weight_sum if weight_sum > 0 else 0.0
    loss_sum = 0.0
    first = True
    # Typed constants, not literals (this body is inlined, so the decorator's ``locals``
    # do not apply): with literals the shared callees would compile once more than for
    # predict_rows.
    with_loss, input_off = np.bool_(True), np.int64(0)
    yes, no = np.bool_(True), np.bool_(False)
    for b0 in range(start, stop, block_rows):
        m = min(stop, b0 + block_rows) - b0
        if threads is not None:
            _team_gather(team, m, b0, weighted)
        if serial is not None:
            _gather_ser(m, X, Y, sw, weighted, order, b0, acts, ybuf, swbuf)
        for r in range(m):
            finite[r] = 1
        forward_block(m, theta, sizes, w_off, b_off, act_off, hidden_code, out_code,
                      loss_code, with_loss, with_gradient, weighted, acts, input_off,
                      sizes[0], acts, logits, ybuf, swbuf, acts, act_off[n_layers], deltas,
                      row_loss, scalars, serial, threads, team, no, no, finite)
        # Before any step is applied (a finite row whose sums overflowed trains on, as ever).
        if not _flagged_rows_finite(m, finite, acts, 0, sizes[0], sizes[0]):
            return loss_sum, weight_sum, False
        if with_gradient and sgd_lr > 0:
            backward_block(m, -sgd_lr * alpha, 1.0, theta, sizes, w_off, b_off, act_off,
                           hidden_code, acts, deltas, theta, scalars, serial, threads, team,
                           yes)
        elif with_gradient:
            backward_block(m, alpha, 0.0 if first else 1.0, theta, sizes, w_off, b_off,
                           act_off, hidden_code, acts, deltas, grad, scalars, serial,
                           threads, team, no)
        for r in range(m):
            loss_sum += row_loss[r]
        first = False
    return loss_sum, weight_sum, True


@jit_serial
def _span_finite(buf, off, n):
    """Are ``buf[off:off + n]`` all finite? (No early exit: the loop vectorises.)"""
    span = buf[off:off + n]
    ok = True
    for j in range(n):
        ok &= np.isfinite(span[j])
    return ok


@jit_serial(inline=True)
def _flagged_rows_finite(m, flags, x, off, ld, n):
    """After the first layer's products flagged rows by their sums (``_forward_tile``):
    are the rows with ``flags[r] == 0`` finite themselves? Row ``r`` of the layer's input
    is ``x[off + r * ld:off + r * ld + n]``; only the flagged rows are read."""
    for r in range(m):
        if flags[r] == 0 and not _span_finite(x, off + r * ld, n):
            return False
    return True


# ---------------------------------------------------------------------------
# The thread team: each parallel pass is a job whose tasks the members claim (fastbp._team)
# ---------------------------------------------------------------------------

# Job kinds, the job's slots in ``team_i`` (from ``JOB_BASE``) and in ``team_f``.
JOB_GATHER, JOB_FORWARD, JOB_BACKWARD, JOB_UPDATE = 1, 2, 3, 4
(J_KIND, J_M, J_L, J_START, J_WITH_LOSS, J_WITH_DELTA, J_WEIGHTED, J_FROM_X, J_SRC_OFF,
 J_SRC_LD, J_TO_OUT, J_O_OFF, J_INTO_THETA, J_HIDDEN, J_OUT_CODE, J_LOSS_CODE,
 J_OPT_CODE) = range(JOB_BASE, JOB_BASE + 17)
assert J_OPT_CODE < JOB_BASE + JOB_SLOTS
F_ALPHA, F_BETA, F_LR, F_MU, F_BETA1, F_BETA2, F_EPS, F_ADAM_LR, F_L2_SCALE = range(9)


def _team_of(threads, n_team, team_i, team_f, X, Y, sw, order, x_flat, o_flat, theta, grad,
             sizes, w_off, b_off, act_off, chunks, acts, logits, ybuf, swbuf, deltas,
             row_loss, flags, scalars, opt_m, opt_v, weight_sq):
    """The team ``(n_team, team_i, team_f, bufs)`` on the threaded path, ``None`` on the
    others (nopython only). ``bufs`` holds every array a job may touch, in this order; an
    entry point that lacks one passes a buffer of the same type, which its jobs never
    touch. Built only where ``threads`` is not None: the other paths then compile none of
    it (measured: building it everywhere cost the serial tiled path's first fit 0.5 s)."""
    raise NotImplementedError  # only the nopython overload below exists


@overload(_team_of, jit_options={"nogil": True})
def _team_of_impl(threads, n_team, team_i, team_f, X, Y, sw, order, x_flat, o_flat, theta,
                  grad, sizes, w_off, b_off, act_off, chunks, acts, logits, ybuf, swbuf,
                  deltas, row_loss, flags, scalars, opt_m, opt_v, weight_sq):
    if isinstance(threads, types.NoneType):
        def no_team(threads, n_team, team_i, team_f, X, Y, sw, order, x_flat, o_flat, theta,
                    grad, sizes, w_off, b_off, act_off, chunks, acts, logits, ybuf, swbuf,
                    deltas, row_loss, flags, scalars, opt_m, opt_v, weight_sq):
            return None
        return no_team

    def team(threads, n_team, team_i, team_f, X, Y, sw, order, x_flat, o_flat, theta, grad,
             sizes, w_off, b_off, act_off, chunks, acts, logits, ybuf, swbuf, deltas,
             row_loss, flags, scalars, opt_m, opt_v, weight_sq):
        return (n_team, team_i, team_f,
                (X, Y, sw, order, x_flat, o_flat, theta, grad, sizes, w_off, b_off, act_off,
                 chunks, acts, logits, ybuf, swbuf, deltas, row_loss, flags, scalars, opt_m,
                 opt_v, weight_sq))
    return team


# Jobs over independent units (the rows of a gather, the chunks of an update) run as at
# most this many tasks per member, each a contiguous span of units (rows: at least
# TEAM_MIN_ROWS_PER_TASK): a claim is an atomic compare-and-swap, about as dear as
# gathering one row, and W4's update would otherwise be about 900 tasks. A few tasks per
# member still let the others take over the share of one that is paused.
TEAM_TASKS_PER_MEMBER = 8
TEAM_MIN_ROWS_PER_TASK = 8


@jit_serial(inline=True)
def _team_n_tasks(team_i, n, sizes, chunks):
    """The number of tasks of the job in ``team_i`` for a team of ``n`` (member 0, before
    posting it)."""
    kind, m, l = team_i[J_KIND], team_i[J_M], team_i[J_L]
    if kind == JOB_GATHER:
        return min(_cdiv(m, TEAM_MIN_ROWS_PER_TASK), TEAM_TASKS_PER_MEMBER * n)
    if kind == JOB_FORWARD:
        is_output = l == sizes.shape[0] - 2
        return _n_tiles(m, sizes[l + 1], sizes[l], is_output)
    if kind == JOB_BACKWARD:
        n_dt, n_wa, n_wb = _backward_region_counts(l, m, sizes)
        return n_dt + n_wa + n_wb
    if kind == JOB_UPDATE:
        return min(chunks.shape[0], TEAM_TASKS_PER_MEMBER * n)
    return 0


@jit_serial(inline=True)
def _unit_span(task, n_tasks, n_units):
    """Units ``u0 .. u1 - 1`` of ``task`` of ``n_tasks`` over ``n_units`` units."""
    return (task * n_units) // n_tasks, ((task + 1) * n_units) // n_tasks


@jit_serial(apart=True)
def _team_tasks(tid, n, team_i, team_f, bufs):
    """Claim and run tasks of the job in ``team_i``/``team_f`` as member ``tid`` of ``n``
    until none is left; returns how many it ran. Each task is one the serial pass runs
    (same tile, same function), so the bits depend neither on the thread count nor on
    which member runs which task. Written: whatever the job writes (see the serial
    twins)."""
    (X, Y, sw, order, x_flat, o_flat, theta, grad, sizes, w_off, b_off, act_off, chunks,
     acts, logits, ybuf, swbuf, deltas, row_loss, flags, scalars, opt_m, opt_v,
     weight_sq) = bufs
    task = claim_task(team_i, tid, n)
    if task < 0:
        return 0
    # The job's slots are read only now: a claimed task keeps its job open and the slots
    # unchanged until it is reported done. Read before the claim, they could belong to a
    # job that the others finished meanwhile, and the task claimed to the next one (a
    # member the system paused between ``wait_for_job`` and its claim): wrong results,
    # and tiles outside the buffers.
    kind, m, l, n_tasks = team_i[J_KIND], team_i[J_M], team_i[J_L], team_i[N_TASKS]
    weighted = team_i[J_WEIGHTED] != 0
    sc = scalars[2 * tid:2 * tid + 2]
    n_layers = sizes.shape[0] - 1
    is_output = l == n_layers - 1
    n_dt = n_wa = n_wb = 0  # the backward job's tile counts, fixed for the job
    if kind == JOB_BACKWARD:
        n_dt, n_wa, n_wb = _backward_region_counts(l, m, sizes)
    n_done = 0
    while task >= 0:
        if kind == JOB_GATHER:
            r0, r1 = _unit_span(task, n_tasks, m)
            for r in range(r0, r1):
                _gather_row(r, X, Y, sw, weighted, order, team_i[J_START], acts, ybuf, swbuf)
        elif kind == JOB_FORWARD:
            _forward_layer_tasks(task, m, sizes[l], sizes[l + 1], is_output, team_i[J_HIDDEN],
                                 theta, w_off[l], b_off[l],
                                 x_flat if team_i[J_FROM_X] != 0 else acts,
                                 team_i[J_SRC_OFF], team_i[J_SRC_LD],
                                 logits if is_output else acts,
                                 0 if is_output else act_off[l + 1], sc, team_i[J_OUT_CODE],
                                 team_i[J_LOSS_CODE], team_i[J_WITH_LOSS] != 0,
                                 team_i[J_WITH_DELTA] != 0, weighted, ybuf, swbuf,
                                 o_flat if team_i[J_TO_OUT] != 0 else acts, team_i[J_O_OFF],
                                 deltas, act_off[n_layers], row_loss, l == 0, flags)
        elif kind == JOB_BACKWARD:
            _backward_region_task(task, l, n_dt, n_wa, n_wb, m, sizes, w_off, b_off, act_off,
                                  team_i[J_HIDDEN], team_f[F_ALPHA], team_f[F_BETA], theta,
                                  acts, deltas, theta if team_i[J_INTO_THETA] != 0 else grad,
                                  sc)
        elif kind == JOB_UPDATE:
            c0, c1 = _unit_span(task, n_tasks, chunks.shape[0])
            _update_chunks(c0, c1, team_i[J_OPT_CODE], team_f[F_LR], team_f[F_MU],
                           team_f[F_BETA1], team_f[F_BETA2], team_f[F_EPS],
                           team_f[F_ADAM_LR], team_f[F_L2_SCALE], chunks, grad, theta,
                           opt_m, opt_v, weight_sq)
        n_done += 1
        task = claim_task(team_i, tid, n)
    return n_done


@jit_serial(inline=True)
def _team_worker(tid, team):
    """Members ``1 .. n - 1``: run tasks of the jobs member 0 posts until it tells the
    team to stop (or the Python side does, when a member failed). Inlined into the entry
    points, which saves a compiled level (the task functions themselves are compiled
    apart)."""
    n, team_i, team_f, bufs = team
    while wait_for_job(team_i, n):
        report_done(team_i, _team_tasks(tid, n, team_i, team_f, bufs))


@jit_serial
def _team_post(team_i, n, kind, sizes, chunks):
    """Member 0: post the job of ``kind`` whose other slots it has written."""
    team_i[J_KIND] = kind
    post_job(team_i, n, _team_n_tasks(team_i, n, sizes, chunks))


@jit_serial(inline=True)
def _team_run(team, kind):
    """Member 0: post the job whose slots it has just written, run the tasks it claims,
    and wait until the other members' claimed tasks are done."""
    n, team_i, team_f, bufs = team
    # Typed values, not literals (this body is inlined): each literal kind compiled the
    # poster once more, and a literal 0 the tasks.
    _team_post(team_i, n, np.int64(kind), bufs[8], bufs[12])  # sizes, chunks
    finish_job(team_i, _team_tasks(np.int64(0), n, team_i, team_f, bufs))


@jit_serial(inline=True)
def _team_stop(team):
    """Member 0: release the other members (they return from the entry point)."""
    stop_team(team[1])


@jit_serial(inline=True)
def _team_gather(team, m, start, weighted):
    team_i = team[1]
    team_i[J_M], team_i[J_START], team_i[J_WEIGHTED] = m, start, weighted
    _team_run(team, JOB_GATHER)


@jit_serial(inline=True)
def _team_forward(team, m, l, with_loss, with_delta, weighted, from_x, src_off, src_ld,
                  to_out, o_off, hidden_code, out_code, loss_code):
    team_i = team[1]
    team_i[J_M], team_i[J_L] = m, l
    team_i[J_WITH_LOSS], team_i[J_WITH_DELTA], team_i[J_WEIGHTED] = with_loss, with_delta, weighted
    team_i[J_FROM_X], team_i[J_SRC_OFF], team_i[J_SRC_LD] = from_x, src_off, src_ld
    team_i[J_TO_OUT], team_i[J_O_OFF] = to_out, o_off
    team_i[J_HIDDEN], team_i[J_OUT_CODE], team_i[J_LOSS_CODE] = hidden_code, out_code, loss_code
    _team_run(team, JOB_FORWARD)


@jit_serial(inline=True)
def _team_backward(team, l, m, hidden_code, alpha, beta, into_theta):
    team_i, team_f = team[1], team[2]
    team_i[J_L], team_i[J_M], team_i[J_HIDDEN], team_i[J_INTO_THETA] = (l, m, hidden_code,
                                                                        into_theta)
    team_f[F_ALPHA], team_f[F_BETA] = alpha, beta
    _team_run(team, JOB_BACKWARD)


@jit_serial(inline=True)
def _team_update(team, opt_code, lr, mu, beta1, beta2, eps, adam_lr, l2_scale):
    team_i, team_f = team[1], team[2]
    team_i[J_OPT_CODE] = opt_code
    team_f[F_LR], team_f[F_MU], team_f[F_BETA1], team_f[F_BETA2] = lr, mu, beta1, beta2
    team_f[F_EPS], team_f[F_ADAM_LR], team_f[F_L2_SCALE] = eps, adam_lr, l2_scale
    _team_run(team, JOB_UPDATE)


@jit_serial(entry=True, no=types.boolean, yes=types.boolean, any_loss=types.int64,
            row0=types.int64)
def predict_rows(X, theta, sizes, w_off, b_off, act_off, hidden_code, out_code, block_rows,
                 acts, logits, row_offs, scalars, fused, tiled, threads, out, tid, n_team,
                 team_i, team_f):
    """Network outputs for every row of ``X`` (read in place, block by block); ``fused``,
    ``tiled`` and ``threads`` choose the path, and ``tid``, ``n_team``, ``team_i`` and
    ``team_f`` describe the thread team, as in ``batch_loss_and_gradient``.

    Returns ``True``, or ``False`` (at once, with ``out`` incomplete) when a row of ``X``
    holds NaN or infinity. On the tiled paths the first layer's tiles check their sums
    ``X @ W`` instead of ``X``: a NaN or infinity in a row makes each of the row's sums NaN
    or infinite (``W`` is finite; ``inf * 0`` is NaN), and the sums are fewer and in the
    cache. Only a row with a sum that is not finite (an overflow, or a bad input) has its
    ``X`` row checked. A pass over each block of ``X`` before the products cost 3-4% of a
    784-128-10 prediction (W5, float32, 2 threads: medians 0.0630-0.0632 s against
    0.0604-0.0618 s without it).

    Written: ``out`` (``(n_rows, n_outputs)``, C-contiguous) and the work buffers.
    """
    n = X.shape[0]
    n_in = X.shape[1]
    n_out = out.shape[1]
    n_layers = sizes.shape[0] - 1
    x_flat = X.reshape(-1)
    o_flat = out.reshape(-1)
    # No targets, gradient or optimizer here: their places in the team's arrays are taken
    # by buffers of the same types, never read.
    team = _team_of(threads, n_team, team_i, team_f, X, X, logits, row_offs, x_flat, o_flat,
                    theta, logits, sizes, w_off, b_off, act_off, row_offs.reshape((-1, 1)),
                    acts, logits, logits, logits, logits, logits, row_offs, scalars, logits,
                    logits, team_f)
    if threads is not None and tid > 0:
        _team_worker(tid, team)
        return True
    no, yes, any_loss, row0 = False, True, MSE, 0  # no targets: no error terms, no loss
    finite = True
    for b0 in range(0, n, block_rows):
        m = min(n, b0 + block_rows) - b0
        if fused is not None:
            for r in range(m):
                row_offs[r] = (b0 + r) * n_in
                x_row = x_flat[(b0 + r) * n_in:(b0 + r + 1) * n_in]
                for c in range(n_in):
                    finite &= np.isfinite(x_row[c])
            if not finite:
                return False
            _fused_forward(m, x_flat, row_offs, theta, sizes, w_off, b_off, act_off,
                           hidden_code, acts, logits)
            _output_rows(out_code, any_loss, no, no, no, theta, b_off[n_layers - 1], n_out,
                         row0, m, logits, logits, logits, o_flat, b0 * n_out, logits, row0,
                         logits)
        if tiled is not None or threads is not None:
            # ``row_offs`` (unused on this path) receives the rows' verdicts on their sums.
            for r in range(m):
                row_offs[r] = 1
            forward_block(m, theta, sizes, w_off, b_off, act_off, hidden_code, out_code,
                          any_loss, no, no, no, x_flat, b0 * n_in, n_in, acts, logits, logits,
                          logits, o_flat, b0 * n_out, logits, logits, scalars, tiled,
                          threads, team, yes, yes, row_offs)
            finite = _flagged_rows_finite(m, row_offs, x_flat, b0 * n_in, n_in, n_in)
            if not finite:
                break
    if threads is not None:
        _team_stop(team)
    return finite


# ---------------------------------------------------------------------------
# Training: a bounded number of optimizer steps per call, resumable mid-epoch
# ---------------------------------------------------------------------------

# Slots of the int64 ``progress`` array shared between the kernel and the Python driver:
# it is the one record of how far training got, so an interrupted driver can read it.
EPOCHS_DONE, NEXT_ROW, STEP, STATUS, STEP_AT_EPOCH_START = 0, 1, 2, 3, 4
N_PROGRESS_SLOTS = 5
# Slots of the float64 ``sums`` array: running epoch sums and the current squared weight norm.
DATA_LOSS_SUM, PENALTY_SUM, WEIGHT_SQ = 0, 1, 2


@jit_serial
def _copy(src, dst):
    """``dst[:] = src`` for equal-length 1-D arrays (no shape checks to compile)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@jit_serial
def _all_finite(values):
    for i in range(values.shape[0]):
        if not np.isfinite(values[i]):
            return False
    return True


@jit_serial(entry=True, with_gradient=types.boolean)
def train_steps(X, Y, sw, weighted, shuffle, n_epochs, batch_size, max_steps,
                theta, sizes, w_off, b_off, act_off, chunks, hidden_code, out_code, loss_code,
                opt_code, lr, mu, beta1, beta2, eps, l2, block_rows, fused, tiled, threads,
                order, rng_state, progress, sums, epoch_data_loss, epoch_penalty,
                acts, logits, ybuf, swbuf, deltas, row_loss, row_offs, grad, scalars,
                weight_sq, opt_m, opt_v, theta_backup, opt_m_backup, opt_v_backup, tid,
                n_team, team_i, team_f):
    """Run at most ``max_steps`` mini-batch steps of training, then return.

    Epoch ``progress[EPOCHS_DONE]`` resumes at row ``progress[NEXT_ROW]`` of ``order``. At
    the start of an epoch the parameters and optimizer state are copied to the backups and,
    with ``shuffle``, ``order`` is permuted in place (SplitMix64 Fisher-Yates from
    ``rng_state``). Each step takes the next ``batch_size`` rows (the last batch of an epoch
    holds the remainder), computes the batch's mean error and gradient at the current
    parameters (plus ``0.5 * l2 * ||W||^2 / weight_sum`` and its gradient), and applies
    one optimizer step. At the end of epoch ``e`` the epoch's sums of ``rows * batch error``
    are stored in ``epoch_data_loss[e]`` and ``epoch_penalty[e]``.

    If a batch error or a parameter becomes non-finite, the parameters and optimizer
    state are restored from the backups (the end of the last completed epoch) and
    ``progress[STATUS]`` is set to ``DIVERGED``. A row of ``X`` that holds NaN or infinity
    (each batch's rows are checked before its step; every row is read in an epoch) gets
    the same roll-back and ``NON_FINITE_INPUT``. When all ``n_epochs`` are done the status
    is ``FINISHED``. Returns nothing. The path flags and the thread team (``tid``,
    ``n_team``, ``team_i``, ``team_f``) are as in ``batch_loss_and_gradient``.

    Written: ``theta``, ``order``, ``rng_state``, ``progress``, ``sums``, the epoch arrays,
    optimizer state, backups and work buffers.
    """
    n = X.shape[0]
    x_flat = X.reshape(-1)  # once per call, not per step (the fused path reads rows from it)
    team = _team_of(threads, n_team, team_i, team_f, X, Y, sw, order, x_flat, acts, theta,
                    grad, sizes, w_off, b_off, act_off, chunks, acts, logits, ybuf, swbuf,
                    deltas, row_loss, row_offs, scalars, opt_m, opt_v, weight_sq)
    if threads is not None and tid > 0:
        _team_worker(tid, team)
        return
    # Plain SGD on the tiled path with one block per batch: the step is applied inside the
    # weight-gradient products (``_tiled_batch``). A batch loss that is not finite then
    # finds the step applied, but the roll-back below restores the epoch's start anyway.
    sgd_in_products = (fused is None and opt_code == SGD and l2 == 0 and lr > 0
                       and batch_size <= block_rows)
    steps = 0
    with_gradient = True
    progress[STATUS] = RUNNING
    if l2 > 0:
        sq = 0.0
        for l in range(sizes.shape[0] - 1):
            for i in range(w_off[l], w_off[l] + sizes[l] * sizes[l + 1]):
                sq += theta[i] * theta[i]
        sums[WEIGHT_SQ] = sq
    while progress[EPOCHS_DONE] < n_epochs and steps < max_steps:
        start = progress[NEXT_ROW]
        if start == 0:
            _copy(theta, theta_backup)
            _copy(opt_m, opt_m_backup)
            _copy(opt_v, opt_v_backup)
            progress[STEP_AT_EPOCH_START] = progress[STEP]
            sums[DATA_LOSS_SUM] = 0.0
            sums[PENALTY_SUM] = 0.0
            if shuffle:
                for i in range(n):
                    order[i] = i
                permute_inplace(order, rng_state)
        stop = min(n, start + batch_size)
        loss_sum, weight_sum, finite = 0.0, 0.0, True
        if fused is not None:
            loss_sum, weight_sum, finite = _fused_batch(
                x_flat, Y, sw, weighted, order, start, stop, with_gradient, theta, sizes, w_off,
                b_off, act_off, hidden_code, out_code, loss_code, block_rows, acts, logits,
                ybuf, swbuf, deltas, row_loss, row_offs, grad)
        if tiled is not None or threads is not None:
            loss_sum, weight_sum, finite = _tiled_batch(
                X, Y, sw, weighted, order, start, stop, with_gradient, theta, sizes, w_off,
                b_off, act_off, hidden_code, out_code, loss_code, block_rows, acts, logits,
                ybuf, swbuf, deltas, row_loss, row_offs, grad, scalars, tiled, threads, team,
                lr if sgd_in_products else 0.0)
        rows = stop - start
        penalty = 0.0
        l2_scale = 0.0
        if l2 > 0 and weight_sum > 0:
            l2_scale = l2 / weight_sum
            penalty = 0.5 * l2_scale * sums[WEIGHT_SQ]
        batch_loss = loss_sum / weight_sum if weight_sum > 0 else 0.0
        if not (finite and np.isfinite(batch_loss + penalty)):
            progress[STATUS] = DIVERGED if finite else NON_FINITE_INPUT
            break
        sums[DATA_LOSS_SUM] += rows * batch_loss
        sums[PENALTY_SUM] += rows * penalty
        progress[STEP] += 1
        if not sgd_in_products:
            apply_update(opt_code, lr, mu, beta1, beta2, eps, l2_scale, progress[STEP], chunks,
                         grad, theta, opt_m, opt_v, weight_sq, fused, tiled, threads, team)
        if l2 > 0:
            sq = 0.0
            for ch in range(chunks.shape[0]):  # fixed order over the chunk sums
                sq += weight_sq[ch]
            sums[WEIGHT_SQ] = sq
        steps += 1
        progress[NEXT_ROW] = stop
        if stop == n:
            if not _all_finite(theta):
                progress[STATUS] = DIVERGED
                break
            e = progress[EPOCHS_DONE]
            epoch_data_loss[e] = sums[DATA_LOSS_SUM]
            epoch_penalty[e] = sums[PENALTY_SUM]
            progress[EPOCHS_DONE] = e + 1
            progress[NEXT_ROW] = 0
    if progress[STATUS] != RUNNING:  # roll back to the start of the epoch
        _copy(theta_backup, theta)
        _copy(opt_m_backup, opt_m)
        _copy(opt_v_backup, opt_v)
        progress[STEP] = progress[STEP_AT_EPOCH_START]
        progress[NEXT_ROW] = 0
    elif progress[EPOCHS_DONE] >= n_epochs:
        progress[STATUS] = FINISHED
    if threads is not None:
        _team_stop(team)
