"""The peer runner's target checks and its products-only measurement (bench/)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from bench import compare_peers, workloads

RUN_PEER = Path(__file__).resolve().parents[1] / "bench" / "peers" / "run_peer.py"


def _run_peer_module():
    spec = importlib.util.spec_from_file_location("run_peer", RUN_PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(fastbp_s, jax_s, products_s=None, flops=2.0e9, peak=100.0):
    """A report as compare_peers builds it, with W3 measured for fastbp and JAX."""
    entry = {"flops": flops, "peers": {
        "fastbp": {"status": "ok", "median_s": fastbp_s, "percent_of_peak": 50.0},
        "jax": {"status": "ok", "median_s": jax_s}}}
    if products_s is not None:
        entry["products"] = {"status": "ok", "median_s": products_s}
    return {"matmul_peak": {"status": "ok", "peak_gflops": peak},
            "workloads": {"W3": entry}}


def test_met_target_reports_the_ratio_reached():
    (check,) = compare_peers.check_targets(_report(fastbp_s=0.1, jax_s=0.2))
    assert (check["workload"], check["peer"], check["target"]) == ("W3", "jax", 1.5)
    assert check["reached"] == pytest.approx(2.0)
    assert check["met"]


def test_missed_target_reports_what_it_needs():
    # JAX 0.3 s and a 1.5x target: fastbp needs 0.2 s, i.e. 2 GFLOP / 0.2 s = 10 GFLOP/s,
    # 10% of a 100 GFLOP/s peak; products alone at 0.25 s are slower than that.
    (check,) = compare_peers.check_targets(_report(0.3, 0.3, products_s=0.25))
    assert not check["met"]
    assert check["needed_s"] == pytest.approx(0.2)
    assert check["needed_percent_of_peak"] == pytest.approx(10.0)
    assert check["products_slower"]
    (text,) = compare_peers.format_targets([check])[1:]
    assert "W3 vs JAX jit+scan >= 1.5x: 1.00x -> missed" in text
    assert "needs 0.2 s (10% of peak)" in text
    assert "take 0.25 s (longer)" in text

    (check,) = compare_peers.check_targets(_report(0.3, 0.3, products_s=0.15))
    assert not check["products_slower"]
    assert "(longer)" not in compare_peers.format_targets([check])[1]


def test_targets_skip_peers_that_did_not_run():
    report = _report(0.1, 0.2)
    report["workloads"]["W3"]["peers"]["jax"] = {"status": "skipped"}
    assert compare_peers.check_targets(report) == []


def test_float64_targets_are_no_slower_than_every_peer():
    report = _report(0.1, 0.09)
    report["meta"] = {"dtype": "float64"}
    report["workloads"]["W3"]["peers"]["torch"] = {"status": "ok", "median_s": 0.3}
    report["workloads"]["W4"] = report["workloads"]["W3"]  # no peak target in float64
    checks = compare_peers.check_targets(report)
    assert {(c["workload"], c["peer"], c["target"], c["met"]) for c in checks} == {
        ("W3", "jax", 1.0, False), ("W3", "torch", 1.0, True),
        ("W4", "jax", 1.0, False), ("W4", "torch", 1.0, True)}


def test_peak_target_compares_the_share_of_the_peak():
    report = _report(0.1, 0.2)
    report["workloads"]["W4"] = report["workloads"].pop("W3")
    checks = {c["peer"]: c for c in compare_peers.check_targets(report)}
    assert checks["matmul peak"]["reached"] == 50.0
    assert not checks["matmul peak"]["met"]
    assert checks["jax"]["met"]  # 2x against the 1.1x target


def test_training_products_are_the_products_of_backpropagation():
    run_peer = _run_peer_module()
    training_products, prediction_products = run_peer._products_kernels()
    from numba import typed

    rng = np.random.default_rng(0)
    sizes, batch, last = (5, 4, 3), 6, 4  # two steps: 6 rows, then 4
    weights = typed.List([rng.standard_normal((a, b)) for a, b in zip(sizes, sizes[1:])])
    acts = typed.List([rng.standard_normal((batch, n)) for n in sizes])
    deltas = typed.List([rng.standard_normal((batch, n)) for n in sizes])
    grads = typed.List([np.zeros_like(w) for w in weights])
    x, d_top = acts[0].copy(), deltas[2].copy()
    training_products(np.array([batch, last]), acts, deltas, weights, grads)
    # The arrays hold the last step's products, over its 4 rows.
    a1 = x[:last] @ weights[0]
    np.testing.assert_allclose(acts[1][:last], a1)
    np.testing.assert_allclose(acts[2][:last], a1 @ weights[1])
    np.testing.assert_allclose(grads[1], a1.T @ d_top[:last])
    d1 = d_top[:last] @ weights[1].T
    np.testing.assert_allclose(deltas[1][:last], d1)
    np.testing.assert_allclose(grads[0], x[:last].T @ d1)

    outs = typed.List([x] + [np.zeros((batch, n)) for n in sizes[1:]])
    prediction_products(outs, weights)
    np.testing.assert_allclose(outs[2], x @ weights[0] @ weights[1])


def test_products_measurement_counts_the_run_of_a_workload():
    run_peer = _run_peer_module()
    workload = workloads.get_workload("W3", "quick")
    record = run_peer.measure_products(workload, "float32", repeats=2, data_dir=None)
    n_rows = workloads.n_rows_of(workload)
    steps = -(-n_rows // workload.batch_size) * workload.epochs
    assert record["n_products"] == steps * 5  # 2 forward, 2 gradient, 1 delta
    assert record["flops"] == workloads.training_flops(workload)
    assert len(record["times_s"]) == 2 and record["median_s"] > 0
