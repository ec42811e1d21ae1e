"""Calls from compiled code to kernels that are compiled and optimised on their own.

Why: Numba links every compiled callee into its caller's LLVM module and optimises the
whole module again, so each compiled level pays once more for the optimisation of the
entire tree below it. Measured: a trivial caller of a function that took 2.7 s to
compile took 2.1 s to compile itself. For a large kernel that is called a few times per
step (never inlined anyway) that second optimisation buys nothing, and the first call of
``fit``, ``predict`` and ``gradients`` each paid it again for the same kernels.

How: ``call_apart(dispatcher)`` returns an intrinsic that compiles ``dispatcher`` for the
argument types when a caller is typed, then emits a call to the kernel's symbol through
a declaration only; the JIT linker resolves it to the kernel's own machine code.

Numba's on-disk cache: a cached caller holds a reference to that symbol, so its cache
entry carries a ``reload_init`` hook (Numba runs those before loading the entry's
machine code) that compiles or loads the kernel first. The symbol's name contains a
number that Numba draws per process, so a caller and a kernel from different compile
runs disagree on it when the kernel's entry was replaced while the caller's stayed valid
(an entry deleted, or a cache that holds entries of two versions of the source, as
switching back and forth between versions leaves). Defining the old name as a forwarder
to the new code crashed in such a cache (a call to address 0), so the hook raises
instead, and every dispatcher of fastbp's kind (``register``) treats that cache entry as
missing: the caller is compiled afresh against the kernel's current code. A kernel whose
return type changed is handled the same way. The hooks pass up the call tree, also through
callees that were loaded from the cache (``register``).
"""
import functools
import importlib
import inspect

from numba import types
from numba.core import cgutils
from numba.core.caching import NullCache
from numba.extending import intrinsic

_KERNELS = {}  # (module, name) -> dispatcher of each kernel compiled apart

# Part of the key of every cache entry of fastbp's dispatchers. Raised when entries
# written by earlier builds must not be loaded: 2 since entries may lack reload hooks
# (callers compiled over a cached callee, see ``register``).
CACHE_FORMAT = 2


class StaleCacheError(RuntimeError):
    """A cached caller was compiled against another build of a kernel it calls."""


def register(dispatcher):
    """Make ``dispatcher``'s on-disk cache treat an entry as missing (compile afresh)
    when ``load_apart`` finds it stale or when another ``CACHE_FORMAT`` wrote it, and
    hand a loaded entry's reload hooks on to the callers compiled over it; returns
    ``dispatcher``."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or isinstance(cache, NullCache):
        return dispatcher  # no on-disk cache (``FASTBP_DISABLE_CACHE=1``)
    load = cache.load_overload

    def load_overload(sig, target_context):
        try:
            cres = load(sig, target_context)
        except StaleCacheError:
            return None
        # Numba keeps a loaded entry's hooks on the compile result only, and a
        # caller inherits its callees' hooks from their code libraries: without
        # this, a caller compiled over a cached callee of a kernel compiled apart
        # would be cached without the hook that loads that kernel (and call
        # address 0 when loaded in a process that has not compiled the kernel).
        if cres is not None:
            cres.library._reload_init.update(cres.reload_init)
        return cres

    cache.load_overload = load_overload
    index_key = cache._index_key
    cache._index_key = lambda sig, codegen: (*index_key(sig, codegen), CACHE_FORMAT)
    return dispatcher


def load_apart(module_name, name, arg_types, return_type, symbol):
    """Compile (or load from the cache) kernel ``name`` of ``module_name`` for
    ``arg_types``: run before a cached caller of the kernel is loaded. Raises
    ``StaleCacheError`` (the caller is then compiled afresh, see ``register``) if the
    kernel's code is not the one the caller was compiled against, or if there is no such
    kernel any more."""
    try:
        importlib.import_module(module_name)
        dispatcher = _KERNELS[module_name, name]
    except (ImportError, KeyError):  # the kernel was renamed or moved since
        raise StaleCacheError(f"a cached caller calls {module_name}.{name}, which is "
                              f"not a kernel compiled apart any more") from None
    dispatcher.compile(arg_types)
    cres = dispatcher.overloads[arg_types]
    # The return type is not part of the symbol's name: check it on its own.
    same_code = cres.fndesc.mangled_name == symbol or symbol in _defined_symbols(dispatcher)
    if not (same_code and cres.signature.return_type == return_type):
        raise StaleCacheError(f"a cached caller of {module_name}.{name} was compiled "
                              f"against another build of it")


def _defined_symbols(dispatcher):
    return dispatcher.targetctx.codegen()._engine._defined_symbols


def call_apart(dispatcher):
    """Return a function, callable from compiled code only, that calls ``dispatcher``'s
    own machine code for the arguments' (non-literal) types without linking the kernel
    into the caller.

    Call it at the top level of the kernel's own module (the cache hook finds the
    kernel by importing that module)."""
    py_func = dispatcher.py_func
    key = (py_func.__module__, py_func.__name__)
    _KERNELS[key] = dispatcher

    def typer(args):
        arg_types = tuple(types.unliteral(a) for a in args)
        dispatcher.compile(arg_types)
        cres = dispatcher.overloads[arg_types]
        reload = functools.partial(load_apart, key[0], key[1], arg_types,
                                   cres.signature.return_type, cres.fndesc.mangled_name)

        def codegen(context, builder, signature, llargs):
            context.active_code_library._reload_init.add(reload)
            status, result = context.call_internal_no_propagate(
                builder, cres.fndesc, cres.signature, llargs)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return result

        return cres.signature.return_type(*arg_types), codegen

    # Numba's intrinsics take no ``*args``: one with the kernel's own parameter names.
    params = ", ".join(inspect.signature(py_func).parameters)
    namespace = {"typer": typer}
    exec(f"def {py_func.__name__}(typingctx, {params}):\n"
         f"    return typer(({params},))", namespace)
    call = intrinsic(namespace[py_func.__name__])
    call.__doc__ = py_func.__doc__
    call.dispatcher = dispatcher
    return call
