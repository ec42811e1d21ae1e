"""The thread-scaling runner's tables and its bitwise check (bench/thread_scaling.py), and
the digests the peer runner records for it."""
import numpy as np
import pytest

import fastbp
from bench import thread_scaling, workloads

from .test_compare_peers import _run_peer_module


def _record(median, params="p", outputs="o", first=1.0):
    return {"status": "ok", "median_s": median, "first_call_s": first, "loss": 0.5,
            "parameters_sha256": params, "outputs_sha256": outputs}


def test_default_thread_counts_double_up_to_the_cpus():
    assert thread_scaling.default_thread_counts(1) == [1]
    assert thread_scaling.default_thread_counts(2) == [1, 2]
    assert thread_scaling.default_thread_counts(16) == [1, 2, 4, 8, 16]
    assert thread_scaling.default_thread_counts(12) == [1, 2, 4, 8, 12]


def test_rows_give_speed_up_efficiency_and_share_of_each_peak():
    records = {1: _record(4.0), 2: _record(2.5), 4: _record(1.0)}
    rows = thread_scaling.scaling_rows(records, flops=8e9, peaks={1: 10.0, 4: 40.0})
    assert [r["threads"] for r in rows] == [1, 2, 4]
    assert [r["speedup"] for r in rows] == pytest.approx([1.0, 1.6, 4.0])
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0, 0.8, 1.0])
    assert [r["gflops"] for r in rows] == pytest.approx([2.0, 3.2, 8.0])
    # 2 threads had no peak measured: no share.
    assert [r["percent_of_peak"] for r in rows] == pytest.approx([20.0, None, 20.0])


def test_speed_up_is_over_the_fewest_threads_that_ran():
    records = {1: {"status": "error", "message": "boom"}, 2: _record(3.0), 4: _record(1.5)}
    rows = thread_scaling.scaling_rows(records, flops=1e9, peaks={})
    assert rows[0]["status"] == "error" and "speedup" not in rows[0]
    assert rows[1]["speedup"] == pytest.approx(1.0)
    assert rows[2]["speedup"] == pytest.approx(2.0)
    assert rows[2]["efficiency"] == pytest.approx(1.0)  # 2x on twice the threads
    assert "error: boom" in thread_scaling.format_scaling_table("W3", "fastbp", rows, None)


def test_same_bits_compares_parameters_else_outputs():
    same = thread_scaling.scaling_rows({1: _record(1.0), 2: _record(0.5)}, 1e9, {})
    assert thread_scaling.same_bits(same) is True
    differ = thread_scaling.scaling_rows(
        {1: _record(1.0, params="a"), 2: _record(0.5, params="b")}, 1e9, {})
    assert thread_scaling.same_bits(differ) is False
    # Peers without parameters (torch, JAX): their outputs decide.
    outputs_only = thread_scaling.scaling_rows(
        {1: _record(1.0, params=None, outputs="x"), 2: _record(0.5, params=None,
                                                               outputs="y")}, 1e9, {})
    assert thread_scaling.same_bits(outputs_only) is False
    alone = thread_scaling.scaling_rows({1: _record(1.0)}, 1e9, {})
    assert thread_scaling.same_bits(alone) is None
    assert "same bits at every thread count: NO" in thread_scaling.format_scaling_table(
        "W3", "fastbp", differ, False)


def test_ratio_table_divides_each_peer_by_fastbp_at_the_same_thread_count():
    fastbp = thread_scaling.scaling_rows({1: _record(2.0), 4: _record(0.5)}, 1e9, {})
    jax = thread_scaling.scaling_rows({1: _record(3.0), 4: _record(1.0)}, 1e9, {})
    text = thread_scaling.format_ratio_table("W4", {"fastbp": fastbp, "jax": jax})
    lines = text.splitlines()
    assert lines[2].split() == ["1", "1.50x"] and lines[3].split() == ["4", "2.00x"]
    assert thread_scaling.format_ratio_table("W4", {"fastbp": fastbp}) is None


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        thread_scaling._parse_args(["--threads", "1,x"])
    with pytest.raises(SystemExit):
        thread_scaling._parse_args(["--threads", "0,2"])
    with pytest.raises(SystemExit):
        thread_scaling._parse_args(["--workloads", "W9"])
    with pytest.raises(SystemExit):
        thread_scaling._parse_args(["--peers", "mxnet"])
    args = thread_scaling._parse_args(["--threads", "4,1,2,2", "--workloads", "W3"])
    assert args.threads == [1, 2, 4] and args.workloads == ["W3"]


def test_array_digest_sees_every_bit_the_shape_and_the_dtype():
    digest = _run_peer_module().array_digest
    a = np.arange(6, dtype=np.float32)
    assert digest([a]) == digest([a.copy()])
    flipped = a.copy()
    flipped.view(np.uint32)[3] ^= 1  # the last bit of one element
    assert digest([flipped]) != digest([a])
    assert digest([a.reshape(2, 3)]) != digest([a])
    assert digest([a.astype(np.float64)]) != digest([a])
    assert digest([a[:3], a[3:]]) != digest([a])
    assert digest([a.reshape(2, 3).T]) == digest([np.ascontiguousarray(a.reshape(2, 3).T)])


def test_fastbp_record_holds_digests_of_the_trained_parameters_and_outputs():
    run_peer = _run_peer_module()
    workload = workloads.get_workload("W1", "quick")
    record = run_peer.measure_peer("fastbp", workload, "float32", 1, repeats=1,
                                   data_dir=None)
    X, Y, _, weights, biases = workloads.load_inputs(workload, "float32")
    net = fastbp.Network.from_weights(weights, biases, dtype="float32", n_threads=1,
                                      **workload.network_kwargs())
    net.fit(X, Y, **workload.fit_kwargs())
    assert record["parameters_sha256"] == run_peer.array_digest([*net.weights, *net.biases])
    assert record["outputs_sha256"] == run_peer.array_digest([net.predict(X)])
