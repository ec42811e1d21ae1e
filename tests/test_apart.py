"""Kernels compiled apart (``fastbp._apart``): callers call the kernels' own machine
code instead of linking in a copy, also when the callers come from Numba's cache."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastbp import _apart, kernels

REPO = Path(__file__).resolve().parents[1]

# One kernel compiled apart, in its own module, and a caller that calls it for two
# signatures (int and float ``k``). Numba caches next to the modules' files.
KERNEL = """
from fastbp._config import jit_serial


@jit_serial(apart=True)
def scaled_sum(a, k):
    s = 0.0
    for i in range(a.shape[0]):
        s += {term}
    return s
"""

CALLER = """
from fastbp._config import jit_serial
from apart_kernel import scaled_sum


@jit_serial(entry=True)
def caller(a):
    return scaled_sum(a, 2) + scaled_sum(a, 0.5)
"""

RUN_MODULE = """
import sys
from numba import njit
for i in range(int(sys.argv[1])):
    njit(lambda x: x + 1)(i)  # draws Numba's per-process function numbers
import numpy as np
import apart_module
value = apart_module.caller(np.arange(5.0))
hits = sum(apart_module.caller.stats.cache_hits.values())
linked = "-"
if not hits:  # the caller's LLVM module: the kernel declared, never defined
    llvm = next(iter(apart_module.caller.inspect_llvm().values()))
    kernel = apart_module.scaled_sum.dispatcher
    names = [c.fndesc.mangled_name for c in kernel.overloads.values()]
    declared = all(f"declare i32 @{n}(" in llvm or f'declare i32 @"{n}"(' in llvm for n in names)
    defined = any(f"@{n}(" in line for n in names for line in llvm.splitlines()
                  if line.startswith("define"))
    linked = "declared" if declared and not defined else "linked"
print(value, hits, linked)
"""


def _run(code, args, cwd, env_extra, check=True):
    env = dict(os.environ)
    env.pop("FASTBP_DISABLE_CACHE", None)
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), str(REPO)])
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _write_kernel(folder, term):
    path = folder / "apart_kernel.py"
    path.write_text(textwrap.dedent(KERNEL.format(term=term)))
    # A new modification time: Numba's cache index compares it.
    stamp = path.stat().st_mtime + 10
    os.utime(path, (stamp, stamp))


def test_a_cached_caller_loads_the_kernel_it_calls(tmp_path):
    (tmp_path / "apart_module.py").write_text(textwrap.dedent(CALLER))
    _write_kernel(tmp_path, "a[i] * k")
    no_cache_dir = {"NUMBA_CACHE_DIR": ""}
    expected = str(2 * 10.0 + 0.5 * 10.0)
    # Compiled: the caller only declares the kernel's symbols.
    assert _run(RUN_MODULE, ["0"], tmp_path, no_cache_dir) == [expected, "0", "declared"]
    # Loaded from the cache: the caller's entry loads its kernel first.
    assert _run(RUN_MODULE, ["0"], tmp_path, no_cache_dir) == [expected, "1", "-"]


def _assert_recompiled(tmp_path, expected):
    """The cached caller refers to a build of the kernel that is gone: it is compiled
    afresh (never loaded, which could crash), then loaded from the cache again."""
    no_cache_dir = {"NUMBA_CACHE_DIR": ""}
    assert _run(RUN_MODULE, ["7"], tmp_path, no_cache_dir) == [expected, "0", "declared"]
    assert _run(RUN_MODULE, ["3"], tmp_path, no_cache_dir) == [expected, "1", "-"]


def test_a_cached_caller_of_a_kernel_built_elsewhere_is_compiled_afresh(tmp_path):
    # Defining the old symbol as a forwarder to the kernel's new code crashed (a call to
    # address 0) in a cache that held entries of two versions of fastbp's kernels.
    (tmp_path / "apart_module.py").write_text(textwrap.dedent(CALLER))
    _write_kernel(tmp_path, "a[i] * k")
    expected = str(2 * 10.0 + 0.5 * 10.0)
    _run(RUN_MODULE, ["0"], tmp_path, {"NUMBA_CACHE_DIR": ""})
    # The kernel's entries gone, the caller's kept: the kernel is compiled again, in a
    # process that numbers functions differently.
    kernel_files = list((tmp_path / "__pycache__").glob("apart_kernel.scaled_sum-*"))
    assert kernel_files
    for path in kernel_files:
        path.unlink()
    _assert_recompiled(tmp_path, expected)
    # The kernel's module changed, the caller's did not.
    _write_kernel(tmp_path, "a[i] * k + 1.0")
    _assert_recompiled(tmp_path, str(float(expected) + 10))
    # Its return type changed too (not part of the symbol's name).
    _write_kernel(tmp_path, "a[i] * k\n    return 1")
    _assert_recompiled(tmp_path, "2")
    # The kernel renamed (the caller's module still finds it under the old name): the
    # cached caller's hook looks for a kernel that no longer exists.
    _write_kernel(tmp_path, "a[i] * k")
    path = tmp_path / "apart_kernel.py"
    path.write_text(path.read_text().replace("def scaled_sum(", "def renamed_sum(")
                    + "\n\nscaled_sum = renamed_sum\n")
    stamp = path.stat().st_mtime + 20
    os.utime(path, (stamp, stamp))
    _assert_recompiled(tmp_path, expected)


# Two callers of one kernel through a helper that is cached and linked in as usual.
NESTED = """
from fastbp._config import jit_serial
from apart_kernel import scaled_sum


@jit_serial
def helper(a):
    return scaled_sum(a, 2)


@jit_serial(entry=True)
def first_caller(a):
    return helper(a) + 1.0


@jit_serial(entry=True)
def second_caller(a):
    return helper(a) + 2.0
"""

RUN_NESTED = """
import sys
import numpy as np
from fastbp import _apart
if len(sys.argv) > 2:
    _apart.CACHE_FORMAT = int(sys.argv[2])
import nested_module
caller = getattr(nested_module, sys.argv[1])
print(caller(np.arange(5.0)), sum(caller.stats.cache_hits.values()))
"""


def _write_nested_module(folder):
    (folder / "nested_module.py").write_text(textwrap.dedent(NESTED))
    _write_kernel(folder, "a[i] * k")


def test_a_caller_compiled_over_a_cached_helper_keeps_the_kernel_loading(tmp_path):
    # A helper loaded from the cache gives its callers nothing to inherit (Numba keeps a
    # loaded entry's reload hooks apart from its code library): a caller compiled over
    # it was cached without the hook that loads the kernel, and its next load called
    # address 0.
    _write_nested_module(tmp_path)
    no_cache_dir = {"NUMBA_CACHE_DIR": ""}
    assert _run(RUN_NESTED, ["first_caller"], tmp_path, no_cache_dir) == ["21.0", "0"]
    # The helper comes from the cache, the second caller is compiled over it.
    assert _run(RUN_NESTED, ["second_caller"], tmp_path, no_cache_dir) == ["22.0", "0"]
    # Both callers load from the cache, in processes where nothing else loads the kernel.
    for name, value in (("second_caller", "22.0"), ("first_caller", "21.0")):
        done = _run(RUN_NESTED, [name], tmp_path, no_cache_dir, check=False)
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        assert done.stdout.split() == [value, "1"]


def test_cache_entries_of_another_format_are_not_loaded(tmp_path):
    _write_nested_module(tmp_path)
    no_cache_dir = {"NUMBA_CACHE_DIR": ""}
    older = str(_apart.CACHE_FORMAT - 1)
    assert _run(RUN_NESTED, ["first_caller", older], tmp_path, no_cache_dir) == ["21.0", "0"]
    assert _run(RUN_NESTED, ["first_caller", older], tmp_path, no_cache_dir) == ["21.0", "1"]
    assert _run(RUN_NESTED, ["first_caller"], tmp_path, no_cache_dir) == ["21.0", "0"]
    assert _run(RUN_NESTED, ["first_caller"], tmp_path, no_cache_dir) == ["21.0", "1"]


def test_the_cache_can_be_disabled(tmp_path):
    _write_nested_module(tmp_path)
    disabled = {"NUMBA_CACHE_DIR": "", "FASTBP_DISABLE_CACHE": "1"}
    for _ in range(2):
        assert _run(RUN_NESTED, ["first_caller"], tmp_path, disabled) == ["21.0", "0"]
    assert not list(tmp_path.glob("__pycache__/*.nb?"))


RUN_FIT = """
import numpy as np
import fastbp
from fastbp import kernels
rng = np.random.default_rng(0)
X = rng.standard_normal((50, 3)); Y = rng.standard_normal((50, 2))
for sizes in ([3, 4, 2], [3, 40, 30, 2]):  # the small-network path and the tiled path
    net = fastbp.Network(sizes, random_state=0)
    net.fit(X, Y, epochs=3, batch_size=16)
    print(net.predict(X).sum().hex(), net.loss_curve_[-1].hex())
print(sum(kernels.train_steps.stats.cache_hits.values()))
"""


@pytest.mark.slow
def test_training_kernels_compiled_then_cached_give_the_same_bits(tmp_path):
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    compiled = _run(RUN_FIT, [], tmp_path, cache)
    cached = _run(RUN_FIT, [], tmp_path, cache)
    assert compiled[-1] == "0" and cached[-1] == "2"
    assert compiled[:-1] == cached[:-1]


def test_kernels_compiled_apart_are_called_from_compiled_code_only():
    with pytest.raises(NotImplementedError, match="not usable in pure-python"):
        kernels._output_rows(1, 2)
