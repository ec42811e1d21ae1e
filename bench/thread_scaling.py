"""Thread scaling: the standard workloads at several thread counts, and the bits.

Usage (from the repository root)::

    python bench/thread_scaling.py                          # 1, 2, 4, ... all CPUs
    python bench/thread_scaling.py --threads 1,2,4,8,16 --workloads W3,W4 --peers fastbp,torch
    python bench/thread_scaling.py --size quick --repeats 1  # smoke: shrunk sizes

Every (workload, peer, thread count) runs in its own fresh interpreter through
``bench/peers/run_peer.py``, the peer runner of ``compare_peers.py``, with the same data
and initial weights and its thread count pinned the same way (environment variables,
``torch.set_num_threads``, and the process's CPU affinity when fewer threads than CPUs
are asked for). For each thread count the runner also measures the machine's
matrix-multiply peak (large square BLAS products, ``run_peer.py --peak``) unless
``--no-peak`` is given.

What it prints, per workload: each peer's median time at each thread count, its speed-up
over its own run on the fewest threads, the parallel efficiency (speed-up / thread-count
ratio), achieved GFLOP/s and the share of the peak at that thread count. For the peers
that expose their trained parameters (fastbp and the NumPy reference) it compares the
SHA-256 of the trained weights and biases, and of the outputs, across the thread counts:
fastbp promises the same bits whatever the thread count, and the table says whether they
were. The exit status is 1 when fastbp's bits differed or a fastbp run failed.

Output: the tables, and JSON (``--json``, default ``bench/results/scaling.json``).
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO_ROOT))

from bench import compare_peers, workloads  # noqa: E402  (needs the path set above)

DEFAULT_WORKLOADS = ("W2", "W3", "W4", "W5")  # W1 (2-4-1) always runs on one thread


def default_thread_counts(n_cpus):
    """1, 2, 4, ... up to ``n_cpus``, and ``n_cpus`` itself."""
    counts, n = [], 1
    while n < n_cpus:
        counts.append(n)
        n *= 2
    return counts + [n_cpus]


def scaling_rows(records, flops, peaks):
    """One row per thread count of one peer's records (``{threads: record}``).

    Each row has the median time, the speed-up over the fewest threads that ran, the
    parallel efficiency, GFLOP/s and the percentage of that thread count's peak.
    """
    ran = {n: r for n, r in records.items() if r.get("status") == "ok"}
    base_threads = min(ran) if ran else None
    rows = []
    for n, record in sorted(records.items()):
        row = {"threads": n, "status": record.get("status"),
               "message": record.get("message")}
        if n in ran:
            median = record["median_s"]
            speedup = ran[base_threads]["median_s"] / median
            gflops = flops / median / 1e9
            peak = peaks.get(n)
            row.update(median_s=median, first_call_s=record["first_call_s"],
                       speedup=speedup, efficiency=speedup / (n / base_threads),
                       gflops=gflops, percent_of_peak=100.0 * gflops / peak if peak else None,
                       loss=record["loss"],
                       outputs_sha256=record.get("outputs_sha256"),
                       parameters_sha256=record.get("parameters_sha256"))
        rows.append(row)
    return rows


def same_bits(rows):
    """True when every run's parameter (or, lacking them, output) digest is the same;
    None when fewer than two runs have one."""
    key = "parameters_sha256" if any(r.get("parameters_sha256") for r in rows) \
        else "outputs_sha256"
    digests = [r[key] for r in rows if r.get(key)]
    if len(digests) < 2:
        return None
    return len(set(digests)) == 1


def format_scaling_table(workload_name, peer, rows, identical):
    """The text table of one peer's scaling on one workload."""
    label = compare_peers.PEER_LABELS[peer]
    lines = [f"{workload_name} {label}",
             f"  {'threads':>7} {'median s':>10} {'speed-up':>9} {'efficiency':>10} "
             f"{'GFLOP/s':>8} {'% peak':>7} {'first s':>8}"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"  {row['threads']:>7} {row['status']}: {row['message']}")
            continue
        lines.append(
            f"  {row['threads']:>7} {row['median_s']:>10.4f} {row['speedup']:>8.2f}x "
            f"{100 * row['efficiency']:>9.0f}% {row['gflops']:>8.1f} "
            f"{compare_peers.format_or(row['percent_of_peak'], '.1f'):>7} "
            f"{row['first_call_s']:>8.3f}")
    if identical is not None:
        lines.append("  same bits at every thread count: " + ("yes" if identical else "NO"))
    return "\n".join(lines)


def format_ratio_table(workload_name, peer_rows):
    """Each other peer's median over fastbp's at each thread count (above 1: fastbp is
    faster), or None when fastbp or no other peer ran."""
    fastbp = {r["threads"]: r for r in peer_rows.get("fastbp", []) if r["status"] == "ok"}
    others = [p for p in peer_rows if p != "fastbp"]
    if not fastbp or not others:
        return None
    lines = [f"{workload_name} ratio = peer median / fastbp median",
             f"  {'threads':>7} " + " ".join(f"{compare_peers.PEER_LABELS[p]:>16}"
                                             for p in others)]
    for n in sorted(fastbp):
        cells = []
        for peer in others:
            row = next((r for r in peer_rows[peer] if r["threads"] == n), None)
            ok = row is not None and row["status"] == "ok"
            cells.append(f"{row['median_s'] / fastbp[n]['median_s']:>15.2f}x" if ok
                         else f"{'-':>16}")
        lines.append(f"  {n:>7} " + " ".join(cells))
    return "\n".join(lines)


def _parse_args(argv):
    n_cpus = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(
        description="Time the standard workloads at several thread counts.")
    parser.add_argument("--threads", default=None,
                        help="comma-separated thread counts (default: 1, 2, 4, ... up to "
                             f"the {n_cpus} schedulable CPUs)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                        help="comma-separated subset of W1..W5 (default W2..W5)")
    parser.add_argument("--peers", default="fastbp",
                        help="comma-separated peers (default fastbp; any of "
                             f"{','.join(compare_peers.PEERS)})")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per process after the warm-up (default 3)")
    parser.add_argument("--dtype", default="float32", choices=workloads.DTYPES)
    parser.add_argument("--size", default="full", choices=("full", "asv", "quick"),
                        help="workload size (default full; quick is a smoke run)")
    parser.add_argument("--no-peak", action="store_true",
                        help="skip the matrix-multiply peak at each thread count")
    parser.add_argument("--json", default=str(REPO_ROOT / "bench" / "results" / "scaling.json"),
                        help="where to write the results (default bench/results/scaling.json)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed to one process (default 1800)")
    args = parser.parse_args(argv)
    try:
        args.threads = (default_thread_counts(n_cpus) if args.threads is None else
                        sorted({int(t) for t in args.threads.split(",") if t.strip()}))
    except ValueError:
        parser.error(f"--threads {args.threads!r} is not a comma-separated list of integers")
    if not args.threads or args.threads[0] < 1:
        parser.error(f"--threads {args.threads} must be positive integers")
    if args.repeats < 1:
        parser.error(f"--repeats is {args.repeats}; it must be at least 1")
    args.workloads = compare_peers.parse_names(parser, args.workloads, workloads.WORKLOADS,
                                               "--workloads")
    args.peers = compare_peers.parse_names(parser, args.peers, compare_peers.PEERS, "--peers")
    return args


def main(argv=None):
    """Run the scaling measurement; returns the process exit code."""
    args = _parse_args(argv)
    meta = {"dtype": args.dtype, "threads": args.threads, "repeats": args.repeats,
            "size": args.size, **compare_peers.machine_meta()}
    report = {"meta": meta, "skipped": {}, "matmul_peak": {}, "workloads": {}}
    peers = compare_peers.installed_peers(args.peers, report["skipped"])

    peaks = {}
    if not args.no_peak:
        for n in args.threads:
            record = compare_peers.run_child(["--peak", "--dtype", args.dtype], n,
                                             args.timeout)
            report["matmul_peak"][n] = record
            if record.get("status") == "ok":
                peaks[n] = record["peak_gflops"]
            print(f"matrix-multiply peak, {n} threads: "
                  f"{compare_peers.format_or(peaks.get(n), '.1f', record.get('message'))} GFLOP/s",
                  flush=True)

    failed = False
    with tempfile.TemporaryDirectory(prefix="fastbp-scaling-data-") as data_dir:
        for workload in compare_peers.save_workloads(args.workloads, args.size, args.dtype,
                                                     data_dir, report["skipped"]):
            name = workload.name
            flops = workloads.workload_flops(workload)
            entry = {"definition": dataclasses.asdict(workload), "flops": flops, "peers": {}}
            for peer in peers:
                records = {}
                for n in args.threads:
                    records[n] = compare_peers.run_child(
                        ["--peer", peer, "--workload", name, "--size", args.size,
                         "--dtype", args.dtype, "--repeats", str(args.repeats),
                         "--data", data_dir], n, args.timeout)
                rows = scaling_rows(records, flops, peaks)
                identical = same_bits(rows)
                entry["peers"][peer] = {"rows": rows, "same_bits": identical}
                print(format_scaling_table(name, peer, rows, identical), flush=True)
                if peer == "fastbp" and (identical is False
                                         or any(r["status"] != "ok" for r in rows)):
                    failed = True
            ratios = format_ratio_table(
                name, {peer: value["rows"] for peer, value in entry["peers"].items()})
            if ratios:
                print(ratios, flush=True)
            report["workloads"][name] = entry

    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
