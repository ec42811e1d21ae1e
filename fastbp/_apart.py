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
number that Numba draws per process; if the kernel had to be compiled again while the
caller's entry stayed valid (its cache entry was removed, or its module changed and the
caller's did not), the hook defines the old name as a forwarder to the new one. A
kernel whose return type changed that way cannot be called by the stale caller: the
hook raises and names the cache to clear.
"""
import functools
import importlib
import inspect

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_KERNELS = {}  # (module, name) -> dispatcher of each kernel compiled apart
_FORWARDERS = []  # keeps the forwarders' code alive


def _define_forwarder(dispatcher, cres, name):
    """Define the symbol ``name`` as a function that calls ``cres``'s kernel."""
    library = dispatcher.targetctx.codegen().create_library(f"fastbp_apart_{name}")
    module = library.create_ir_module(name)
    # The kernel's function type under Numba's calling convention.
    fn_type = dispatcher.targetctx.call_conv.get_function_type(cres.signature.return_type,
                                                               cres.signature.args)
    target = cgutils.get_or_insert_function(module, fn_type, cres.fndesc.mangled_name)
    forwarder = ir.Function(module, fn_type, name)
    builder = ir.IRBuilder(forwarder.append_basic_block())
    builder.ret(builder.call(target, forwarder.args))
    library.add_ir_module(module)
    library.finalize()
    _FORWARDERS.append(library)


def load_apart(module_name, name, arg_types, return_type, symbol):
    """Compile (or load from the cache) kernel ``name`` of ``module_name`` for
    ``arg_types`` and make sure that ``symbol`` calls it: run before a cached caller of
    the kernel is loaded."""
    importlib.import_module(module_name)
    dispatcher = _KERNELS[module_name, name]
    dispatcher.compile(arg_types)
    cres = dispatcher.overloads[arg_types]
    if cres.signature.return_type != return_type:
        raise RuntimeError(
            f"Numba's cache holds a caller of {module_name}.{name} compiled for an older "
            f"version of it (it returned {return_type}, now {cres.signature.return_type}); "
            "delete the cache (the __pycache__ folder next to fastbp's modules, or "
            "NUMBA_CACHE_DIR) and run again.")
    if cres.fndesc.mangled_name != symbol and symbol not in _defined_symbols(dispatcher):
        _define_forwarder(dispatcher, cres, symbol)


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
