"""Low-level kernels: the tiled matrix product, the vectorisable exp, the shuffling
generator, and the guard that keeps Python from calling the internal kernels."""
import itertools
import subprocess
import sys

import numpy as np
import pytest
from numba import njit, types
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

from fastbp import _apart as apart_module
from fastbp import _blas as blas_module
from fastbp import _exp as exp_module
from fastbp import _gemm as gemm_module
from fastbp import _rng as rng_module
from fastbp import _team as team_module
from fastbp import kernels as kernels_module
from fastbp._blas import SMALL_PRODUCT, gemm_rm
from fastbp._config import InternalDispatcher
from fastbp._exp import poly_exp
from fastbp._rng import permute_inplace, permute_inplace_py, seed_state
from fastbp.kernels import tile_cols, tile_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4, 2), (37, 50, 61), (130, 64, 100)])
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
def test_gemm_rm_on_offset_tiles_matches_numpy(dtype, shape, trans_a, trans_b, rng):
    m, n, k = shape
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    # Embed the operands in wider buffers so offsets and leading dimensions matter.
    a_buf = np.zeros((A.shape[0], A.shape[1] + 5), dtype)
    a_buf[:, 3:3 + A.shape[1]] = A
    b_buf = np.zeros((B.shape[0], B.shape[1] + 2), dtype)
    b_buf[:, 1:1 + B.shape[1]] = B
    C0 = rng.standard_normal((m, n + 4)).astype(dtype)
    C = C0.copy()
    gemm_rm(trans_a, trans_b, m, n, k, 0.5, a_buf.ravel(), 3, a_buf.shape[1], b_buf.ravel(), 1,
            b_buf.shape[1], 2.0, C.ravel(), 2, C.shape[1], np.zeros(2, dtype))
    expected = C0.copy()
    op_a = A.T if trans_a else A
    op_b = B.T if trans_b else B
    expected[:, 2:2 + n] = 0.5 * op_a.astype(float) @ op_b.astype(float) + 2.0 * C0[:, 2:2 + n]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=tol, atol=tol * np.abs(expected).max())
    assert (shape[0] * shape[1] * shape[2] < SMALL_PRODUCT) == (shape == (3, 4, 2))


def test_gemm_rm_beta_zero_ignores_garbage_in_output():
    a = np.ones(4 * 3)
    b = np.ones(3 * 5)
    c = np.full(4 * 5, np.nan)
    gemm_rm(False, False, 4, 5, 3, 1.0, a, 0, 3, b, 0, 5, 0.0, c, 0, 5, np.zeros(2))
    np.testing.assert_array_equal(c, 3.0)


@intrinsic
def _fused_multiply_add(typingctx, x, y, z):
    """``x * y + z`` rounded once (LLVM's ``llvm.fma``), for the reference below."""
    if not (x == y == z and x in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return x(x, y, z), codegen


@njit(cache=False)
def _fma_chain_product(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                       c_off, ldc, depth, zero, one):
    # The register tiles' documented arithmetic, one element at a time: per block of
    # ``depth`` terms an in-order chain of fused multiply-adds from zero, then
    # ``alpha * s + beta * c`` (``alpha * s`` when beta == 0), later blocks with beta = 1.
    for i in range(m):
        for j in range(n):
            out = c_off + i * ldc + j
            for p0 in range(0, k, depth):
                s = zero
                for p in range(p0, min(k, p0 + depth)):
                    a_ip = a[a_off + p * lda + i] if trans_a else a[a_off + i * lda + p]
                    b_pj = b[b_off + j * ldb + p] if trans_b else b[b_off + p * ldb + j]
                    s = _fused_multiply_add(a_ip, b_pj, s)
                beta_p = beta if p0 == 0 else one
                c[out] = alpha * s + beta_p * c[out] if beta_p != 0 else alpha * s


@njit(cache=False)
def _register_tiled_gemm(trans_a, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                         c_off, ldc):
    gemm_module.register_tiled_gemm(trans_a, m, n, k, alpha, a, a_off, lda, b, b_off, ldb,
                                    beta, c, c_off, ldc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
def test_register_tiles_are_the_documented_fma_chains_bit_for_bit(dtype, trans_a, rng):
    # Shapes with every kind of edge: a last tile of 1-5 rows, a last strip of 1, 2 or 3
    # vectors or of less than one, and inner dimensions of one, two and three blocks. The
    # register tiles run on any CPU (in 512-bit vectors with AVX-512, 256-bit ones
    # otherwise), so this test does too.
    depth = gemm_module.DEPTH
    shapes = [(1, 1, 1), (13, 150, 600), (6, 64, depth), (5, 10, depth + 1), (20, 200, 40),
              (8, 17, 3), (11, 120, 2 * depth + 7)]
    for (m, n, k), (alpha, beta) in itertools.product(shapes, [(1.0, 0.0), (-0.5, 2.0)]):
        A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        # Offsets and leading dimensions wider than the tile: what lies around it must
        # stay as it was, bit for bit.
        a_buf = rng.standard_normal(A.size + 3 * A.shape[0] + 7).astype(dtype)
        lda = A.shape[1] + 3
        a_buf[5:5 + A.shape[0] * lda].reshape(A.shape[0], lda)[:, :A.shape[1]] = A
        b_buf = rng.standard_normal(B.size + 2 * k + 9).astype(dtype)
        ldb = n + 2
        b_buf[4:4 + k * ldb].reshape(k, ldb)[:, :n] = B
        ldc = n + 5
        c_buf = rng.standard_normal(m * ldc + 20).astype(dtype)
        if beta == 0:
            c_buf[3:3 + m * ldc] = np.nan  # ignored, as in the BLAS
        got, expected = c_buf.copy(), c_buf.copy()
        args = (trans_a, m, n, k)
        tail = (a_buf, 5, lda, b_buf, 4, ldb)
        _register_tiled_gemm(*args, alpha, *tail, beta, got, 3, ldc)
        _fma_chain_product(trans_a, False, m, n, k, dtype(alpha), *tail, dtype(beta), expected,
                           3, ldc, depth, dtype(0), dtype(1))
        assert np.array_equal(got.view(np.uint8), expected.view(np.uint8)), (m, n, k, alpha)
        # The sum itself, against float64 NumPy (the reference above shares its arithmetic).
        tile = got[3:3 + m * ldc].reshape(m, ldc)[:, :n]
        op_a = (A.T if trans_a else A).astype(float)
        c_old = np.where(np.isnan(c_buf), 0, c_buf)[3:3 + m * ldc].reshape(m, ldc)[:, :n]
        exact = alpha * op_a @ B.astype(float) + beta * c_old
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(tile, exact, rtol=tol, atol=tol * np.abs(exact).max())


@njit(cache=False)
def _register_tiled_gemm_bt(m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
                            ldc):
    gemm_module.register_tiled_gemm_bt(m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                                       c_off, ldc)


@njit(cache=False)
def _transpose_block(src, src_start, src_ld, dst, dst_start, dst_ld):
    gemm_module.transpose_block(src, src_start, src_ld, dst, dst_start, dst_ld)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_block_transposes_one_vector_square_in_place(dtype, rng):
    lanes = gemm_module._VECTOR_BYTES // np.dtype(dtype).itemsize
    src = rng.standard_normal(7 + lanes * 21).astype(dtype)
    dst = rng.standard_normal(3 + lanes * 19).astype(dtype)
    expected = dst.copy()
    block = src[7:7 + lanes * 21].reshape(lanes, 21)[:, :lanes]
    expected[3:3 + lanes * 19].reshape(lanes, 19)[:, :lanes] = block.T
    _transpose_block(src, 7, 21, dst, 3, 19)
    assert np.array_equal(dst, expected)  # the rest of ``dst`` unchanged


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_tiles_with_b_transposed_are_the_same_fma_chains_bit_for_bit(dtype, rng):
    # Edges of the packing as well as of the tiles: strips whose width and depth blocks
    # whose length are or are not whole vectors (the square blocks transposed in
    # registers, the rest element by element), several depth blocks, last row tiles of
    # 1-5 rows.
    depth = gemm_module.DEPTH
    lanes = gemm_module._VECTOR_BYTES // np.dtype(dtype).itemsize
    shapes = [(1, 1, 1), (13, 150, 600), (6, 4 * lanes, depth), (5, lanes + 3, depth + 1),
              (20, 200, 40), (8, 17, 3), (11, 120, 2 * depth + 7), (7, 2 * lanes, 3 * lanes)]
    for (m, n, k), (alpha, beta) in itertools.product(shapes, [(1.0, 0.0), (-0.5, 2.0)]):
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((n, k)).astype(dtype)  # stored n x k: the product uses B^T
        lda, ldb, ldc = k + 3, k + 2, n + 5
        a_buf = rng.standard_normal(m * lda + 12).astype(dtype)
        a_buf[5:5 + m * lda].reshape(m, lda)[:, :k] = A
        b_buf = rng.standard_normal(n * ldb + 13).astype(dtype)
        b_buf[4:4 + n * ldb].reshape(n, ldb)[:, :k] = B
        c_buf = rng.standard_normal(m * ldc + 20).astype(dtype)
        if beta == 0:
            c_buf[3:3 + m * ldc] = np.nan  # ignored, as in the BLAS
        got, expected = c_buf.copy(), c_buf.copy()
        a_before, b_before = a_buf.copy(), b_buf.copy()
        tail = (a_buf, 5, lda, b_buf, 4, ldb)
        _register_tiled_gemm_bt(m, n, k, alpha, *tail, beta, got, 3, ldc)
        _fma_chain_product(False, True, m, n, k, dtype(alpha), *tail, dtype(beta), expected,
                           3, ldc, depth, dtype(0), dtype(1))
        assert np.array_equal(got.view(np.uint8), expected.view(np.uint8)), (m, n, k, alpha)
        assert np.array_equal(a_buf, a_before) and np.array_equal(b_buf, b_before)
        tile = got[3:3 + m * ldc].reshape(m, ldc)[:, :n]
        c_old = np.where(np.isnan(c_buf), 0, c_buf)[3:3 + m * ldc].reshape(m, ldc)[:, :n]
        exact = alpha * A.astype(float) @ B.astype(float).T + beta * c_old
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(tile, exact, rtol=tol, atol=tol * np.abs(exact).max())


# Shapes that ``takes_register_tiles`` sends to the tiles on one kind of CPU and to the
# BLAS on another (W2's forward product, the small end of the 512-bit tiles, W4's forward
# tile).
_ROUTED_SHAPES = [(32, 64, 64), (64, 128, 200), (256, 256, 1024)]


@njit(cache=False)
def _takes_register_tiles(m, n, k, c):
    return gemm_module.takes_register_tiles(m, n, k, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_rm_sends_products_where_takes_register_tiles_says(dtype, rng):
    for (m, n, k), trans_a, trans_b in itertools.product(
            _ROUTED_SHAPES, [False, True], [False, True]):
        if trans_a and trans_b:
            continue  # fastbp has no such product: the BLAS does it
        a = rng.standard_normal(m * k).astype(dtype)
        b = rng.standard_normal(k * n).astype(dtype)
        lda = m if trans_a else k
        ldb = k if trans_b else n
        via_gemm_rm, direct = np.zeros(m * n, dtype), np.zeros(m * n, dtype)
        gemm_rm(trans_a, trans_b, m, n, k, 0.5, a, 0, lda, b, 0, ldb, 0.0, via_gemm_rm, 0, n,
                np.zeros(2, dtype))
        if trans_b:
            _register_tiled_gemm_bt(m, n, k, 0.5, a, 0, lda, b, 0, ldb, 0.0, direct, 0, n)
        else:
            _register_tiled_gemm(trans_a, m, n, k, 0.5, a, 0, lda, b, 0, ldb, 0.0, direct, 0,
                                 n)
        if _takes_register_tiles(m, n, k, direct):  # the tiles' own bits
            assert np.array_equal(via_gemm_rm, direct), (m, n, k, trans_a, trans_b)
        else:  # the BLAS: its own order of summation, equal or not in the last bits
            tol = 1e-4 if dtype == np.float32 else 1e-11
            np.testing.assert_allclose(via_gemm_rm, direct, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("vector_bytes", [64, 32, 0])
def test_register_tiles_take_large_products_with_avx512_and_small_ones_with_avx2(
        monkeypatch, vector_bytes):
    # Each kind of CPU's rule, whatever this CPU has (the Python body reads the constant).
    monkeypatch.setattr(gemm_module, "_TARGET_VECTOR_BYTES", vector_bytes)
    takes = gemm_module.takes_register_tiles.py_func
    f32, f64 = np.zeros(1, np.float32), np.zeros(1, np.float64)
    small, middling, large = (32, 64, 64), (128, 128, 784), (256, 256, 1024)
    got = [takes(*shape, c) for c in (f32, f64) for shape in (small, middling, large)]
    expected = {64: [False, True, True] * 2,  # 512-bit tiles: from 1M multiply-adds
                32: [True, True, False, True, False, False],  # 256-bit: below 16M / 1M
                0: [False] * 6}[vector_bytes]  # no AVX2: the BLAS does every product
    assert got == expected


def test_compiled_routing_is_this_cpus():
    for shape, dtype in itertools.product(_ROUTED_SHAPES + [(128, 128, 784)],
                                          [np.float32, np.float64]):
        c = np.zeros(1, dtype)
        assert _takes_register_tiles(*shape, c) == gemm_module.takes_register_tiles.py_func(
            *shape, c)


def test_register_tiles_follow_numbas_target_cpu(monkeypatch):
    config = gemm_module.config
    monkeypatch.setattr(config, "CPU_NAME", None)
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+avx512f,+fma")
    assert gemm_module._target_vector_bytes() == 64
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-avx512f,+fma")
    assert gemm_module._target_vector_bytes() == 32
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-avx512f,-fma")
    assert gemm_module._target_vector_bytes() == 0
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    monkeypatch.setattr(config, "CPU_NAME", "generic")  # a portable build: no guessing
    assert gemm_module._target_vector_bytes() == 0


@pytest.mark.parametrize("register_tiles", [True, False])
def test_tiles_depend_on_shape_only(monkeypatch, register_tiles):
    # Both policies, whatever this CPU has: the Python bodies read the module's constant.
    monkeypatch.setattr(kernels_module, "REGISTER_TILES", register_tiles)
    monkeypatch.setattr(kernels_module, "STRIP_COLUMNS", 64)  # 512-bit float32 strips
    monkeypatch.setattr(kernels_module, "tile_rows", tile_rows.py_func)
    monkeypatch.setattr(kernels_module, "_cdiv", kernels_module._cdiv.py_func)
    rows, cols = tile_rows.py_func, tile_cols.py_func
    assert rows(256, 1024) == 256 and rows(1024, 784) == 256 and rows(4, 2) == 4
    assert cols(128, 10, 64) == 10
    if register_tiles:
        assert rows(128, 784) == 64
        assert rows(784, 128) == 49 and rows(784, 256) == 196  # 16 and 4 equal tiles
        # One strip wide where the tile still takes the register tiles: W4's forward
        # sums and weight gradients in 16 and 64 tasks, W3's forward sums in 4.
        assert cols(256, 1024, 784) == 64 and cols(1024, 1024, 256) == 64
        assert cols(128, 128, 784) == 64
        # Narrower would send the tile to the BLAS (49 x 64 x 128 < 2**20): kept whole.
        assert cols(784, 128, 128) == 128
        assert cols(32, 64, 64) == 64
    else:
        assert cols(256, 1024, 784) == 256 and cols(256, 1024, 256) == 512
        # Fewer, bigger BLAS calls: each packs its operands again.
        assert rows(128, 784) == 128
        assert rows(784, 128) == 196 and rows(784, 256) == 196
        assert cols(128, 128, 784) == 64  # one row tile: the columns in two
        assert cols(128, 300, 784) == 160 and cols(1024, 128, 784) == 128


def test_narrow_register_tiles_take_the_route_of_the_wide_ones(monkeypatch):
    # tile_cols splits products into whole strips only as far as each tile still goes to
    # the register tiles: the routing, and so every bit, is that of the widest tiles
    # (512 columns for weight gradients, 256 otherwise), whatever the shape.
    monkeypatch.setattr(kernels_module, "REGISTER_TILES", True)
    monkeypatch.setattr(kernels_module, "STRIP_COLUMNS", 64)
    monkeypatch.setattr(kernels_module, "tile_rows", tile_rows.py_func)
    monkeypatch.setattr(kernels_module, "_cdiv", kernels_module._cdiv.py_func)
    product = gemm_module.REGISTER_TILE_PRODUCT
    for m in (1, 6, 32, 49, 128, 256, 784, 1024):
        for n in (1, 10, 63, 64, 65, 128, 300, 1024):
            for k in (1, 16, 64, 128, 256, 784, 1024):
                rows = tile_rows.py_func(m, k)
                cols = tile_cols.py_func(m, n, k)
                widest = min(n, 512 if k <= 256 else 256)
                assert cols <= widest and (cols == n or cols % 64 == 0)
                assert (rows * cols * k >= product) == (rows * widest * k >= product)


def test_compiled_tile_policy_is_this_cpus(monkeypatch):
    shapes = [(128, 128, 784), (784, 128, 128), (256, 1024, 1024), (32, 64, 64)]
    compiled = [(tile_rows(m, k), tile_cols(m, n, k)) for m, n, k in shapes]
    monkeypatch.setattr(kernels_module, "_cdiv", kernels_module._cdiv.py_func)
    assert compiled == [(tile_rows.py_func(m, k), tile_cols.py_func(m, n, k))
                        for m, n, k in shapes]


def test_compiled_and_python_shuffles_agree():
    for n, seed in [(1, 0), (2, 1), (1000, 7), (60000, 123)]:
        compiled, python = np.arange(n), np.arange(n)
        s1, s2 = seed_state(seed), seed_state(seed)
        for _ in range(2):
            permute_inplace(compiled, s1)
            permute_inplace_py(python, s2)
            np.testing.assert_array_equal(compiled, python)
            assert s1[0] == s2[0]
        assert sorted(compiled.tolist()) == list(range(n))


def test_shuffle_is_a_fair_permutation():
    counts = np.zeros((5, 5))
    state = seed_state(3)
    for _ in range(20000):
        order = np.arange(5)
        permute_inplace(order, state)
        counts[np.arange(5), order] += 1
    # Each value lands in each position 1/5 of the time (4000 of 20000; sd ~57).
    assert np.abs(counts - 4000).max() < 300


@njit(cache=False)
def _exp_in_loop(x, out):
    for i in range(x.shape[0]):  # vectorised by LLVM
        out[i] = poly_exp(x[i])


@njit(cache=False)
def _exp_one(x):
    return poly_exp(x)


def _ulp_distance(a, b):
    bits = np.int32 if a.dtype == np.float32 else np.int64
    return np.abs(a.view(bits).astype(np.int64) - b.view(bits).astype(np.int64))


def _edges(x, n=25):
    """``n`` floats on each side of ``x`` (of ``x``'s dtype), ``x`` included."""
    up, down = [x], [x]
    for _ in range(n):
        up.append(np.nextafter(up[-1], x.dtype.type(np.inf)))
        down.append(np.nextafter(down[-1], x.dtype.type(-np.inf)))
    return np.array(up + down, x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poly_exp_is_within_one_ulp_of_the_rounded_exp(dtype, rng):
    lo, hi = (-104.0, 89.0) if dtype == np.float32 else (-745.5, 710.0)
    x = np.concatenate([rng.uniform(lo, hi, 400_000), rng.uniform(-1, 1, 100_000),
                        np.linspace(lo, hi, 10_001)]).astype(dtype)
    # Around the overflow threshold and where results leave the subnormals for 0.
    smallest = np.finfo(dtype).smallest_subnormal
    x = np.concatenate([x, _edges(np.log(np.finfo(dtype).max).astype(dtype)),
                        _edges(dtype(np.log(np.longdouble(smallest) / 2)))])
    got = np.empty_like(x)
    _exp_in_loop(x, got)
    with np.errstate(over="ignore"):
        exact = np.exp(x.astype(np.longdouble)).astype(dtype)
    # Where long double is just double (not x86-64 Linux), the float64 reference is itself
    # only within an ulp.
    wide = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant
    tolerance = 1 if dtype == np.float32 or wide else 2
    assert _ulp_distance(got, exact).max() <= tolerance
    assert np.isinf(got[np.isinf(exact)]).all() and (got[exact == 0] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poly_exp_special_values(dtype):
    x = np.array([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, 1e30, -1e30], dtype)
    got = np.empty_like(x)
    _exp_in_loop(x, got)
    assert got[0] == 1 and got[1] == 1
    assert abs(got[2] - np.e) <= np.spacing(dtype(np.e))
    assert got[3] == np.inf and got[4] == 0 and np.isnan(got[5])
    assert got[6] == np.inf and got[7] == 0
    assert got.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poly_exp_gives_the_same_bits_in_vector_and_scalar_code(dtype, rng):
    # A loop runs most elements in vectors and the rest one at a time; tiles of different
    # widths split rows differently, so both must agree bit for bit.
    x = rng.uniform(-30, 30, 1000).astype(dtype)
    in_loop = np.empty_like(x)
    _exp_in_loop(x, in_loop)
    one_by_one = np.array([_exp_one(v) for v in x], dtype)
    assert np.array_equal(in_loop.view(np.uint8), one_by_one.view(np.uint8))
    for width in (1, 3, 7, 17):
        part = np.empty(width, dtype)
        _exp_in_loop(x[5:5 + width], part)
        assert np.array_equal(part, in_loop[5:5 + width])


@njit(cache=False)
def _bias_grad(m, n_out, c0, c1, alpha, beta, delta, d_off, grad, b_o):
    kernels_module._bias_grad_columns(m, n_out, c0, c1, alpha, beta, delta, d_off, grad, b_o)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.75])
def test_bias_gradient_is_the_row_ordered_float64_column_sum_bit_for_bit(dtype, beta, rng):
    # Vector groups of COLUMN_GROUP and of 8 columns, then single columns: every column
    # must get the bits of the plain loop, whatever group it falls in.
    group = kernels_module.COLUMN_GROUP
    for m, n_out, c0, c1 in ((1, 5, 0, 5), (7, 77, 0, 77), (32, 10, 0, 10),
                             (5, 2 * group + 13, 3, 2 * group + 12), (9, group, 0, group)):
        d_off, b_o = 11, 5
        delta = rng.standard_normal(d_off + m * n_out + 4).astype(dtype)
        # Column 4 sums to 0.0, so alpha * sum is -0.0, which the scalar expression's
        # "+ 0.0" (beta == 0) turns into 0.0.
        delta[d_off + 4:d_off + m * n_out:n_out] = 0.0
        grad = rng.standard_normal(b_o + n_out + 4).astype(dtype)
        before = grad.copy()
        alpha = -0.1
        _bias_grad(m, n_out, c0, c1, alpha, beta, delta, d_off, grad, b_o)
        expected = before.copy()
        block = delta[d_off:d_off + m * n_out].reshape(m, n_out)
        for c in range(c0, c1):
            s = 0.0
            for r in range(m):
                s += float(block[r, c])
            old = float(before[b_o + c])
            expected[b_o + c] = alpha * s + (beta * old if beta != 0 else 0.0)
        assert np.array_equal(grad.view(np.uint8), expected.view(np.uint8)), (m, n_out)


def _dispatchers():
    """Every compiled function of fastbp's modules (those compiled apart included)."""
    found = {}
    for module in (kernels_module, blas_module, gemm_module, exp_module, rng_module,
                   team_module):
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    for (module, name), obj in apart_module._KERNELS.items():
        found[f"{module}.{name}"] = obj
    return found


def test_kernels_without_a_python_wrapper_refuse_python_calls_with_a_type_error():
    dispatchers = _dispatchers()
    internal = {k: d for k, d in dispatchers.items() if d.targetoptions.get("no_cpython_wrapper")}
    assert len(internal) > 20 and len(dispatchers) > len(internal)  # both kinds exist
    for name, d in dispatchers.items():
        assert isinstance(d, InternalDispatcher) == (name in internal), name
    for name, d in internal.items():
        with pytest.raises(TypeError, match="cannot be called from Python"):
            d(1, 2)
    # Called with arguments it compiles for, such a kernel used to crash the process.
    code = ("from fastbp import kernels\n"
            "try:\n    kernels._cdiv(5, 2)\nexcept TypeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "fastbp.kernels._cdiv runs only inside fastbp's compiled kernels" in done.stdout
