#!/usr/bin/env bash
# CI smoke of the asv suite (about a minute on an idle 2-core machine with Numba's cache
# warm): checks that every benchmark in bench/ is discovered and well-formed, then runs
# the cheap ones once each in this interpreter, one of every kind (time_, peakmem_,
# track_, timeraw_). `asv run` exits non-zero when any benchmark fails, and so does this.
# The heavy ones (W2-W4 timings, Quality, SpeedupOverReference, ColdStartEmptyCache)
# are left to full runs: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# asv wants a machine description; write the default one when there is none.
[ -f "${HOME}/.asv-machine.json" ] || asv machine --yes > /dev/null

asv check --python=same
asv run --python=same --quick --show-stderr --dry-run \
    --bench '^benchmarks\.(W1|W5|Products)\.' \
    --bench '^benchmarks\.(PeakMemory|FitMemory|ColdStartWarmCache)\.'
