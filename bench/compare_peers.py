"""Compare fastbp with its peers on the standard workloads, in one run.

Usage (from the repository root)::

    python bench/compare_peers.py --threads 2 --repeats 3
    python bench/compare_peers.py --workloads W1,W3 --dtype float64 --quick

Every (workload, peer) pair runs in its own fresh interpreter
(``bench/peers/run_peer.py``) with the same data, the same initial weights and the
same hyper-parameters (all from ``bench/workloads.py``, written once to a temporary
directory and loaded by every peer) and with its thread count pinned. The peers:

* ``fastbp``     -- this work tree's ``fastbp.Network``
* ``reference``  -- ``fastbp.reference.ReferenceNetwork`` (plain NumPy), always run
* ``sklearn``    -- scikit-learn ``MLPClassifier`` / ``MLPRegressor``, solver "sgd"
* ``torch``      -- PyTorch CPU eager (``pip install torch==2.13.0``)
* ``jax``        -- JAX, whole training in one ``jax.jit`` over ``lax.scan``

A peer that is not installed is skipped with a message. The same run measures the
matrix-multiply peak (large square products, same thread count) so that achieved
GFLOP/s can be read as a fraction of what the machine does, and, for W2-W5, the time of
the workload's matrix products alone, one whole-matrix BLAS call each
(``run_peer.py --products``). The summary ends with each target of issue 3: the ratio
reached, and for a missed one the time it needs, as a share of the peak and against the
products alone.

Output: a table per workload and a summary of medians with ratios
``peer median / fastbp median`` (above 1: fastbp is faster), a JSON file
(``--json``, default ``bench/results/peers.json``) and a PNG bar chart next to it when
matplotlib is installed.
"""
import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    # Run as a script: make this work tree's bench/ and fastbp/ importable.
    sys.path.insert(0, str(REPO_ROOT))

from bench import workloads  # noqa: E402  (needs the path set above)

RUN_PEER = REPO_ROOT / "bench" / "peers" / "run_peer.py"
PEERS = ("fastbp", "reference", "sklearn", "torch", "jax")
PEER_LABELS = {"fastbp": "fastbp", "reference": "NumPy reference",
               "sklearn": "scikit-learn MLP", "torch": "PyTorch eager",
               "jax": "JAX jit+scan"}
SKIPPED_EXIT_CODE = 3  # run_peer.py's code for "peer not installed"

# The speed targets of issue 3 (2 threads, float32): fastbp must be at least this many
# times faster than the peer, ratios taken in the same run.
TARGETS = (("W1", "jax", 5.0), ("W1", "torch", 100.0), ("W1", "reference", 50.0),
           ("W2", "jax", 2.0), ("W2", "torch", 10.0), ("W2", "sklearn", 10.0),
           ("W3", "jax", 1.5), ("W3", "torch", 2.0),
           ("W4", "jax", 1.1), ("W4", "torch", 1.1),
           ("W5", "jax", 1.2), ("W5", "torch", 1.2))
PEAK_TARGET = ("W4", 80.0)  # % of the matrix-multiply peak measured in the same run
# float64: no slower than the best float64 peer, i.e. at least 1x against every peer.
FLOAT64_TARGET_RATIO = 1.0
# Workloads whose networks fastbp runs through BLAS products (W1's 2-4-1 network takes the
# fused path, without BLAS): for these the runner also times the workload's matrix
# products alone, one whole-matrix BLAS call each (run_peer.py --products), to set a
# missed target against what the BLAS itself does on those shapes.
PRODUCTS_BOUND_WORKLOADS = ("W2", "W3", "W4", "W5")
_INSTALL_HINTS = {"torch": "pip install torch==2.13.0", "jax": "pip install jax jaxlib",
                  "sklearn": "pip install scikit-learn"}


def missing_reason(peer):
    """Why ``peer`` cannot run here, or None when it can (nothing is imported)."""
    if peer in ("fastbp", "reference"):
        spec = importlib.util.find_spec("fastbp")
        if spec is None:
            return "fastbp is not importable"
        if peer == "reference" and not any(
                Path(place, "reference.py").exists()
                for place in spec.submodule_search_locations or ()):
            return "fastbp.reference does not exist yet"
        return None
    modules = {"sklearn": ("sklearn",), "torch": ("torch",), "jax": ("jax", "jaxlib")}
    for module in modules[peer]:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({_INSTALL_HINTS[peer]})"
    return None


def thread_environment(n_threads):
    """The environment of a child process, thread counts pinned to ``n_threads``."""
    env = dict(os.environ)
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "MKL_NUM_THREADS"):
        env[name] = str(n_threads)
    return env


def run_child(arguments, n_threads, timeout):
    """Run ``run_peer.py`` with ``arguments`` and return the record it wrote."""
    with tempfile.TemporaryDirectory(prefix="fastbp-peer-") as scratch:
        out = Path(scratch) / "record.json"
        command = [sys.executable, str(RUN_PEER), *arguments, "--threads", str(n_threads),
                   "--out", str(out)]
        try:
            finished = subprocess.run(command, env=thread_environment(n_threads),
                                      capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "error", "message": f"timed out after {timeout} s"}
        if out.exists():
            record = json.loads(out.read_text())
            if finished.returncode not in (0, SKIPPED_EXIT_CODE) and "message" not in record:
                record["message"] = f"exit code {finished.returncode}"
            return record
        tail = (finished.stderr or finished.stdout).strip().splitlines()[-5:]
        return {"status": "error",
                "message": f"exit code {finished.returncode}: " + " | ".join(tail)}


def merge_rounds(records):
    """Pool the repeats of several rounds of one peer (or of the products-only
    measurement, which has no memory figure) into one record."""
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return records[-1]
    merged = dict(ok[-1])
    merged["times_s"] = [t for r in ok for t in r["times_s"]]
    merged["median_s"] = statistics.median(merged["times_s"])
    merged["first_call_s"] = statistics.median(r["first_call_s"] for r in ok)
    merged["first_calls_s"] = [r["first_call_s"] for r in ok]
    if "peak_rss_mb" in merged:
        merged["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    merged["rounds"] = len(ok)
    return merged


def add_derived(workload, peers, peak_gflops):
    """Add ratios to fastbp, achieved GFLOP/s and % of the matmul peak to each record."""
    flops = workloads.workload_flops(workload)
    base = peers.get("fastbp", {})
    base_median = base.get("median_s") if base.get("status") == "ok" else None
    for record in peers.values():
        if record.get("status") != "ok":
            continue
        median = record["median_s"]
        record["ratio_to_fastbp"] = median / base_median if base_median else None
        record["gflops"] = flops / median / 1e9 if median else None
        record["percent_of_peak"] = (100.0 * record["gflops"] / peak_gflops
                                     if peak_gflops and record["gflops"] else None)
    return flops


def check_targets(report):
    """Each target of issue 3 against this run (``TARGETS`` and the W4 peak target for
    float32; for float64, at least 1x against every peer): the ratio reached and, where it
    is missed,
    the time fastbp would need, the share of the matmul peak that time means (100% or
    more: impossible on this machine), and whether the products alone took longer.

    Returns
    -------
    list of dict
        One per target whose workload and peer were measured.
    """
    peak = report.get("matmul_peak", {}).get("peak_gflops")
    float32 = report.get("meta", {}).get("dtype", "float32") == "float32"
    if float32:
        targets = TARGETS
    else:
        targets = [(name, peer, FLOAT64_TARGET_RATIO) for name in workloads.WORKLOADS
                   for peer in PEERS if peer != "fastbp"]
    checks = []
    for name, peer, ratio in targets:
        entry = report["workloads"].get(name)
        if entry is None:
            continue
        base, other = entry["peers"].get("fastbp", {}), entry["peers"].get(peer, {})
        if base.get("status") != "ok" or other.get("status") != "ok":
            continue
        needed = other["median_s"] / ratio
        check = {"workload": name, "peer": peer, "target": ratio,
                 "reached": other["median_s"] / base["median_s"],
                 "needed_s": needed, "fastbp_s": base["median_s"]}
        check["met"] = check["reached"] >= ratio
        if entry["flops"] and peak and name in PRODUCTS_BOUND_WORKLOADS:
            check["needed_percent_of_peak"] = 100.0 * entry["flops"] / needed / 1e9 / peak
        products = entry.get("products", {})
        if products.get("status") == "ok":
            check["products_s"] = products["median_s"]
            check["products_slower"] = needed < products["median_s"]
        checks.append(check)
    name, percent = PEAK_TARGET
    base = report["workloads"].get(name, {}).get("peers", {}).get("fastbp", {})
    if float32 and base.get("percent_of_peak") is not None:
        checks.append({"workload": name, "peer": "matmul peak", "target": percent,
                       "reached": base["percent_of_peak"],
                       "met": base["percent_of_peak"] >= percent})
    return checks


def format_targets(checks):
    """Text lines: one per target, with what a missed one would need."""
    lines = ["Targets of issue 3 (peer median / fastbp median; the W4 peak target in % of "
             "the matmul peak):"]
    for c in checks:
        if c["peer"] == "matmul peak":
            lines.append(f"  {c['workload']} >= {c['target']:.0f}% of peak: "
                         f"{c['reached']:.1f}% -> {'met' if c['met'] else 'missed'}")
            continue
        text = (f"  {c['workload']} vs {PEER_LABELS[c['peer']]} >= {c['target']:g}x: "
                f"{c['reached']:.2f}x -> {'met' if c['met'] else 'missed'}")
        if not c["met"]:
            text += f"; needs {c['needed_s']:.4g} s"
            if c.get("needed_percent_of_peak") is not None:
                text += f" ({c['needed_percent_of_peak']:.0f}% of peak)"
            if "products_s" in c:
                text += (f"; the products alone, a BLAS call each, take "
                         f"{c['products_s']:.4g} s" +
                         (" (longer)" if c["products_slower"] else ""))
        lines.append(text)
    return lines


def format_or(value, spec, missing="-"):
    """``format(value, spec)``, or ``missing`` when ``value`` is None."""
    return missing if value is None else format(value, spec)


def format_workload_table(workload, peers, meta):
    """Text table of one workload: one line per peer."""
    lines = [f"== {workload.name}: {workload.description} "
             f"({meta['dtype']}, {meta['threads']} threads, {meta['repeats']} repeats"
             f"{', quick size' if meta['quick'] else ''}) =="]
    header = (f"{'peer':<18}{'first call s':>13}{'median s':>11}{'peer/fastbp':>12}"
              f"{'loss':>9}{'accuracy':>9}{'GFLOP/s':>9}{'% peak':>8}{'peak RSS MB':>12}")
    lines.append(header)
    for name, record in peers.items():
        label = PEER_LABELS[name]
        if record.get("status") != "ok":
            lines.append(f"{label:<18}{record.get('status', 'error')}: "
                         f"{record.get('message', '')}")
            continue
        lines.append(
            f"{label:<18}{record['first_call_s']:>13.4f}{record['median_s']:>11.4f}"
            f"{format_or(record.get('ratio_to_fastbp'), '.2f'):>12}"
            f"{record['loss']:>9.4f}{record['accuracy']:>9.4f}"
            f"{format_or(record.get('gflops'), '.2f'):>9}"
            f"{format_or(record.get('percent_of_peak'), '.1f'):>8}"
            f"{record['peak_rss_mb']:>12.0f}")
    products = meta.get("products", {})
    if products.get("status") == "ok":
        flops = products["flops"]
        gflops = flops / products["median_s"] / 1e9 if products["median_s"] else None
        percent = (100.0 * gflops / meta["peak_gflops"]
                   if gflops and meta.get("peak_gflops") else None)
        lines.append(f"{'products only':<18}{products['first_call_s']:>13.4f}"
                     f"{products['median_s']:>11.4f}{'':>30}{format_or(gflops, '.2f'):>9}"
                     f"{format_or(percent, '.1f'):>8}   ({products['n_products']} BLAS calls, "
                     f"nothing else)")
    return "\n".join(lines)


def format_summary(report):
    """Text table: median seconds per workload and peer, ratio to fastbp in brackets."""
    peers = [p for p in PEERS if any(p in w["peers"] for w in report["workloads"].values())]
    lines = ["Median seconds (peer median / fastbp median in brackets; above 1: "
             "fastbp is faster)",
             f"{'':<6}" + "".join(f"{PEER_LABELS[p]:>22}" for p in peers)]
    for name, entry in report["workloads"].items():
        cells = []
        for peer in peers:
            record = entry["peers"].get(peer, {})
            if record.get("status") != "ok":
                cells.append(f"{record.get('status', '-'):>22}")
                continue
            ratio = record.get("ratio_to_fastbp")
            text = f"{record['median_s']:.4g}"
            if ratio is not None and peer != "fastbp":
                text += f" ({ratio:.2f}x)"
            cells.append(f"{text:>22}")
        lines.append(f"{name:<6}" + "".join(cells))
    peak = report.get("matmul_peak", {})
    if peak.get("status") == "ok":
        lines.append(f"Matrix-multiply peak: {peak['peak_gflops']:.1f} GFLOP/s "
                     f"({report['meta']['dtype']}, {report['meta']['threads']} threads, "
                     f"best of {', '.join(peak['detail'])})")
    w4 = report["workloads"].get("W4", {}).get("peers", {}).get("fastbp", {})
    if w4.get("status") == "ok" and w4.get("percent_of_peak") is not None:
        lines.append(f"W4: fastbp trains at {w4['gflops']:.1f} GFLOP/s (real FLOPs as in "
                     f"workloads.md), {w4['percent_of_peak']:.1f}% of that peak")
    if report.get("targets"):
        lines.extend(format_targets(report["targets"]))
    return "\n".join(lines)


def draw_chart(report, path):
    """Bar chart of the medians, one panel per workload; returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    entries = list(report["workloads"].items())
    figure, axes = plt.subplots(1, len(entries), figsize=(3.2 * len(entries), 4.2),
                                squeeze=False)
    colours = dict(zip(PEERS, ("#d62728", "#7f7f7f", "#ff7f0e", "#1f77b4", "#2ca02c")))
    for axis, (name, entry) in zip(axes[0], entries):
        ok = [(p, r) for p, r in entry["peers"].items() if r.get("status") == "ok"]
        positions = range(len(ok))
        axis.bar(positions, [r["median_s"] for _, r in ok],
                 color=[colours[p] for p, _ in ok])
        axis.set_xticks(list(positions))
        axis.set_xticklabels([PEER_LABELS[p] for p, _ in ok], rotation=40, ha="right",
                             fontsize=8)
        axis.set_yscale("log")
        axis.set_title(name, fontsize=10)
        for x, (peer, record) in zip(positions, ok):
            ratio = record.get("ratio_to_fastbp")
            if ratio is not None and peer != "fastbp":
                axis.annotate(f"{ratio:.1f}x", (x, record["median_s"]), ha="center",
                              va="bottom", fontsize=7)
    axes[0][0].set_ylabel("median seconds (log scale)")
    meta = report["meta"]
    figure.suptitle(f"fastbp vs peers: {meta['dtype']}, {meta['threads']} threads, "
                    f"median of {meta['repeats']} x {meta['rounds']}; labels: peer / fastbp"
                    + (" (quick size)" if meta["quick"] else ""), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def machine_meta():
    """The CPU model and count, Python, platform, git commit and date, for a report's
    ``meta``."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always",
                                 "--dirty"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "platform": platform.platform(), "commit": commit,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def installed_peers(peers, skipped):
    """The ``peers`` that can run here; each other one goes into ``skipped`` with the
    reason, which is also printed."""
    ready = []
    for peer in peers:
        reason = missing_reason(peer)
        if reason is None:
            ready.append(peer)
        else:
            skipped[peer] = reason
            print(f"skipping {PEER_LABELS[peer]}: {reason}", flush=True)
    return ready


def save_workloads(names, size, dtype, directory, skipped):
    """Write the inputs of the workloads ``names`` to ``directory`` for the children and
    return those workloads; one whose data cannot be made (W2's digits need
    scikit-learn) goes into ``skipped``, with a message."""
    saved = []
    for name in names:
        workload = workloads.get_workload(name, size)
        try:
            workloads.save_inputs(workload, dtype, directory)
        except ImportError as error:
            skipped[name] = str(error)
            print(f"skipping {name}: {error}", flush=True)
            continue
        saved.append(workload)
    workloads.clear_cache()  # the children load the files; keep this process small
    return saved


def parse_names(parser, text, known, option):
    """The comma-separated names in ``text``; an unknown one is a usage error of
    ``parser`` that names it and the ``known`` ones."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"{option} has {unknown}; expected names among {list(known)}")
    return names


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Compare fastbp with its peers on the standard workloads W1..W5.")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for every peer (default: all schedulable CPUs)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per peer after the warm-up (default 3)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the peers this many times in turn and pool their "
                             "repeats, to spread slow phases of the machine (default 1)")
    parser.add_argument("--workloads", default=",".join(workloads.WORKLOADS),
                        help="comma-separated subset of W1..W5")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated subset of {','.join(PEERS)}")
    parser.add_argument("--dtype", default="float32", choices=workloads.DTYPES)
    parser.add_argument("--quick", action="store_true",
                        help="shrunk workloads for a smoke run (see workloads.py)")
    parser.add_argument("--json", default=str(REPO_ROOT / "bench" / "results" / "peers.json"),
                        help="where to write the results (default bench/results/peers.json)")
    parser.add_argument("--png", default=None,
                        help="bar chart path (default: the JSON path with .png)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed to one peer process (default 1800)")
    args = parser.parse_args(argv)
    for name in ("threads", "repeats", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} is {getattr(args, name)}; it must be at least 1")
    args.workloads = parse_names(parser, args.workloads, workloads.WORKLOADS, "--workloads")
    args.peers = parse_names(parser, args.peers, PEERS, "--peers")
    if "reference" not in args.peers:
        args.peers.append("reference")  # the NumPy reference always runs
    args.peers = [p for p in PEERS if p in args.peers]
    return args


def main(argv=None):
    """Run the comparison; returns the process exit code."""
    args = _parse_args(argv)
    size = "quick" if args.quick else "full"
    meta = {"dtype": args.dtype, "threads": args.threads, "repeats": args.repeats,
            "rounds": args.rounds, "quick": args.quick, "size": size, **machine_meta()}
    report = {"meta": meta, "skipped": {}, "workloads": {}}

    peers = installed_peers(args.peers, report["skipped"])
    with tempfile.TemporaryDirectory(prefix="fastbp-peers-data-") as data_dir:
        chosen = save_workloads(args.workloads, size, args.dtype, data_dir, report["skipped"])

        print(f"matrix-multiply peak ({args.dtype}, {args.threads} threads) ...", flush=True)
        peak = run_child(["--peak", "--dtype", args.dtype], args.threads, args.timeout)
        report["matmul_peak"] = peak
        peak_gflops = peak.get("peak_gflops") if peak.get("status") == "ok" else None
        print(f"  {format_or(peak_gflops, '.1f', peak.get('message'))} GFLOP/s", flush=True)

        for workload in chosen:
            rounds = {peer: [] for peer in peers}
            products = []  # the products-only lower bound, once per round
            for _ in range(args.rounds):
                for peer in peers:
                    record = run_child(
                        ["--peer", peer, "--workload", workload.name, "--size", size,
                         "--dtype", args.dtype, "--repeats", str(args.repeats),
                         "--data", data_dir], args.threads, args.timeout)
                    rounds[peer].append(record)
                    if record.get("status") == "ok":
                        print(f"  {workload.name} {PEER_LABELS[peer]:<17} median "
                              f"{record['median_s']:.4f} s, first call "
                              f"{record['first_call_s']:.3f} s, loss {record['loss']:.4f}",
                              flush=True)
                    else:
                        print(f"  {workload.name} {PEER_LABELS[peer]:<17} "
                              f"{record.get('status')}: {record.get('message')}", flush=True)
                if workload.name in PRODUCTS_BOUND_WORKLOADS:
                    record = run_child(
                        ["--products", "--workload", workload.name, "--size", size,
                         "--dtype", args.dtype, "--repeats", str(args.repeats),
                         "--data", data_dir], args.threads, args.timeout)
                    products.append(record)
                    print(f"  {workload.name} {'products only':<17} "
                          + (f"median {record['median_s']:.4f} s"
                             if record.get("status") == "ok"
                             else f"{record.get('status')}: {record.get('message')}"),
                          flush=True)
            merged = {peer: merge_rounds(records) for peer, records in rounds.items()}
            flops = add_derived(workload, merged, peak_gflops)
            report["workloads"][workload.name] = {
                "definition": dataclasses.asdict(workload), "flops": flops, "peers": merged}
            if products:
                report["workloads"][workload.name]["products"] = merge_rounds(products)
    report["targets"] = check_targets(report)

    print()
    for name, entry in report["workloads"].items():
        print(format_workload_table(workloads.get_workload(name, size), entry["peers"],
                                    dict(meta, peak_gflops=peak_gflops,
                                         products=entry.get("products", {}))))
        print()
    print(format_summary(report))

    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {json_path}")
    png_path = Path(args.png) if args.png else json_path.with_suffix(".png")
    if draw_chart(report, png_path):
        print(f"wrote {png_path}")
    else:
        print("matplotlib is not installed: no chart drawn (pip install matplotlib)")
    failed = [f"{w}/{p}" for w, e in report["workloads"].items()
              for p, r in e["peers"].items() if r.get("status") == "error"]
    if failed:
        print(f"peers that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
