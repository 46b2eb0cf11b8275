"""The one place where numba options are chosen, and sepkit's kernel cache.

Kernels import ``jit`` (serial) or ``jit_parallel`` from here so that every
kernel shares the same settings. No ``fastmath``: the partitioner accepts or
rejects moves on the sign of small entropy deltas, and reassociated sums can
flip that sign.

The kernel cache
----------------
Compiled kernels are kept on disk by :class:`KernelCache`, numba's own cache
with three changes (``docs/api.md``, "The kernel cache"):

- Its entries live in a folder named by :data:`CACHE_STAMP`: the cache format,
  numba's and llvmlite's versions and a hash of every kernel source file. A cache
  written by another version of sepkit or numba, or before a kernel was edited, is
  never read (numba itself only notices edits to a kernel's own file, not to the
  kernels it calls).
- A kernel whose machine code calls into numba's threading layer (a ``prange``
  loop, its own or one inlined from a kernel it calls) starts that layer before
  its code is loaded, and its entry is saved with numba's reload step. numba
  drops that step when it compiles a kernel whose parallel callees were loaded
  from the cache (numba issues #8578, #9938); the entry then loads in a later
  process with the layer's symbols unresolved, and its first call jumps to
  address 0. The check reads the machine code itself, so it also covers entries
  saved without the step.
- Writers of one cache folder take a file lock, so that processes compiling at
  the same time cannot give two kernels the same data file (numba #4807).
- An entry that cannot be read (a truncated or garbled index or data file) is a
  miss: the kernel compiles again and its new entry replaces the bad one. numba
  itself raises on such a file at every later call.
- Where no cache folder is writable (numba finds "no locator"), or a save fails,
  kernels compile in memory, once per process, with a warning.

The threading layer is started only when a kernel that needs it is compiled or
loaded, never at import: a process that only imported sepkit can still fork.

This relies on numba internals (the cache classes, the layout of a cached
compile result, ``numba.np.ufunc.parallel``), so ``pyproject.toml`` pins the
numba versions it was tested with.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
import types as types_module
import warnings
from pathlib import Path

import llvmlite
import numba
from filelock import FileLock
from numba.core import caching, types
from numba.core.registry import CPUDispatcher
from numba.np.ufunc import parallel as _parallel

__all__ = [
    "CACHE_STAMP",
    "Kernel",
    "KernelCache",
    "KernelCacheWarning",
    "PARALLEL_CHUNKS",
    "PARALLEL_MIN_WORK",
    "cache_dirs",
    "clear_cache",
    "jit",
    "jit_inline",
    "jit_parallel",
    "prange",
    "serial_launches",
    "serial_twin",
]

# Raise when the layout or meaning of a cache entry changes; a new value is a new folder.
CACHE_FORMAT = 1


def _kernel_sources_hash() -> str:
    """sha256 of this file and every kernel module, in name order."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in [here / "_jit.py", *sorted((here / "_kernels").glob("*.py"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CACHE_STAMP = (
    f"sepkit-cache{CACHE_FORMAT}-numba{numba.__version__}-llvmlite{llvmlite.__version__}"
    f"-{_kernel_sources_hash()}"
)

# Names of the threading layer's functions, as compiled code refers to them. numba adds
# them to the process only when the layer starts; machine code loaded before that has
# them resolved to address 0.
_LAYER_SYMBOLS = (
    b"numba_parallel_for",
    b"do_scheduling_signed",
    b"do_scheduling_unsigned",
    b"get_num_threads",
    b"set_num_threads",
    b"get_thread_id",
)


def _needs_threading_layer(payload) -> bool:
    """Whether a reduced compile result's machine code calls the threading layer."""
    _name, kind, data = payload[0]
    if kind != "object":  # not a form numba writes to its cache: assume the worst
        return True
    object_code = data[0]
    return any(symbol in object_code for symbol in _LAYER_SYMBOLS)


def _start_threading_layer() -> None:
    """numba's reload step for parallel code: start the threading layer (once a process)."""
    _parallel._launch_threads()


class _StampedLocator:
    """A numba cache locator whose folder is a :data:`CACHE_STAMP` subfolder of its own."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def get_cache_path(self) -> str:
        return os.path.join(self._inner.get_cache_path(), CACHE_STAMP)

    def ensure_cache_path(self) -> None:
        path = self.get_cache_path()
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # writable, as numba checks


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    def __init__(self, py_func):
        super().__init__(py_func)
        self._locator = _StampedLocator(self._locator)

    def reduce(self, cres):
        payload = list(super().reduce(cres))
        reload_init = list(payload[7])
        kept = any(getattr(f, "__name__", "") == "_reload_parfors" for f in reload_init)
        if _needs_threading_layer(payload) and not kept:
            payload[7] = [*reload_init, _reload_parfors]
        return tuple(payload)

    def rebuild(self, target_context, payload):
        if _needs_threading_layer(payload):
            _start_threading_layer()
        return super().rebuild(target_context, payload)


def _reload_parfors():
    """The reload step kept with entries whose code is parallel (numba's own, by name)."""
    _start_threading_layer()


class KernelCacheWarning(RuntimeWarning):
    """The kernel cache could not be used as it should; kernels compile again."""


_warned: set[str] = set()


def _warn(message: str, once: str | None = None) -> None:
    """Warn, or with ``once`` only on the first warning of that kind in this process."""
    if once is not None:
        if once in _warned:
            return
        _warned.add(once)
    warnings.warn(f"sepkit: {message}", KernelCacheWarning, stacklevel=3)


class _TolerantCacheFile(caching.IndexDataCacheFile):
    """numba's index and data files, where a file that cannot be read is a miss.

    A bad index reads as empty, so the next save writes a new one; a bad data file
    reads as absent, so the next save of its kernel overwrites it (numba reuses the
    data file name the index holds for that kernel).
    """

    def _load_index(self):
        try:
            return super()._load_index()
        except Exception as exc:  # truncated, garbled, or not a pickle at all
            _warn(f"unreadable kernel cache index {self._index_path} ({exc!r}); dropped")
            return {}

    def _load_data(self, name):
        try:
            return super()._load_data(name)
        except OSError:
            raise  # numba's own case: a data file removed under its index
        except Exception as exc:
            _warn(f"unreadable kernel cache entry {self._data_path(name)} ({exc!r}); dropped")
            return None


class KernelCache(caching.FunctionCache):
    """numba's function cache, stamped, with the reload step kept, bad entries dropped and
    writes locked."""

    _impl_class = _KernelCacheImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _TolerantCacheFile(
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=self._impl.locator.get_source_stamp(),
        )

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # an entry that unpickles but cannot be rebuilt
            _warn(f"kernel cache entry of {self._name} could not be loaded ({exc!r}); dropped")
            return None

    def save_overload(self, sig, data):
        try:
            self._impl.locator.ensure_cache_path()
            with FileLock(os.path.join(self.cache_path, ".lock")):
                super().save_overload(sig, data)
        except OSError as exc:  # e.g. the folder became read-only: keep the kernel in memory
            _warn(f"could not save compiled kernels in {self.cache_path} ({exc!r})", "save")


def _make_cache(py_func) -> caching.Cache:
    """A :class:`KernelCache`, or numba's in-memory NullCache where no folder is writable."""
    try:
        return KernelCache(py_func)
    except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
        _warn(
            f"no writable folder for compiled kernels ({exc}); they compile in memory, in "
            "every process. Set NUMBA_CACHE_DIR to a folder you can write.",
            "no locator",
        )
        return caching.NullCache()


def cache_dirs() -> list[str]:
    """The folders that hold sepkit's compiled kernels in this process (one in practice).

    With ``NUMBA_CACHE_DIR`` set they lie under it; otherwise in the ``__pycache__``
    folder of ``sepkit/_kernels`` (or numba's per-user cache folder where that is not
    writable). Each is named by :data:`CACHE_STAMP`; deleting one only costs a
    recompilation.
    """
    import importlib
    import pkgutil

    import sepkit._kernels as kernels

    paths = set()
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        for value in vars(module).values():
            cache = getattr(value, "_cache", None)
            if isinstance(cache, KernelCache):
                paths.add(cache.cache_path)
    return sorted(paths)


class Kernel(CPUDispatcher):
    """numba's CPU dispatcher, compiling one version of a kernel where numba would compile several.

    - A call from another kernel with a constant argument (``f(x, 0)``) is typed with the
      constant's plain type: numba would otherwise compile a version for the literal
      ``0`` beside the one for ``int64``.
    - A read-only array from Python (the arrays of a :class:`sepkit.Graph` are read-only)
      is typed as a writable one, the type of the arrays kernels make for each other.
      Kernels never write into their inputs; the flag only guards the user's arrays.
    """

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)

    def typeof_pyval(self, val):
        tp = super().typeof_pyval(val)
        if isinstance(tp, types.Array) and not tp.mutable:
            tp = tp.copy(readonly=False)
        return tp


def clear_cache(path: str) -> list[str]:
    """Delete the kernel caches of every version beside ``path`` (a :func:`cache_dirs`
    folder): the ``sepkit-cache*`` folders of its parent. Returns what was removed."""
    import shutil

    removed = []
    for folder in sorted(Path(path).parent.glob("sepkit-cache*")):
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(str(folder))
    return removed


def _kernel(**options):
    """A decorator: ``numba.njit(nogil=True, **options)`` as a :class:`Kernel` with a
    :class:`KernelCache`."""
    targetoptions = {"nopython": True, "boundscheck": None, "nogil": True, **options}

    def decorate(py_func):
        dispatcher = Kernel(py_func=py_func, locals={}, targetoptions=targetoptions)
        dispatcher._cache = _make_cache(py_func)
        return dispatcher

    return decorate


# --- serial twins ---------------------------------------------------------------------------

# id of a kernel that is, or may call, a parallel kernel -> its serial twin
_TWINS: dict[int, Kernel] = {}


def _kernels_called(kernel: Kernel) -> list[Kernel]:
    py_func = kernel.py_func
    found = (py_func.__globals__.get(name) for name in py_func.__code__.co_names)
    return [value for value in found if isinstance(value, Kernel)]


def _reaches_parallel(kernel: Kernel) -> bool:
    if kernel.targetoptions.get("parallel"):
        return True
    return any(_reaches_parallel(k) for k in _kernels_called(kernel))


def serial_twin(kernel: Kernel) -> Kernel:
    """The same kernel without parallelism, for callers that run it on small graphs.

    numba compiles every kernel a kernel may call, whatever branch a call sits in, so a
    kernel that takes its parallel path only on large graphs compiles the ``prange``
    kernels (and, once loaded, starts the threading layer) on any graph. Its twin is
    compiled from the same source, ``prange`` loops running as plain loops, and calls the
    twins of the kernels below it that may reach a parallel one: no body is written
    twice, and the two chains give the same results (their loops are the same loops).
    The twin is named ``<name>_serial`` (its cache entry too).
    """
    twin = _TWINS.get(id(kernel))
    if twin is not None:
        return twin
    if not _reaches_parallel(kernel):
        return kernel
    py_func = kernel.py_func
    scope = dict(py_func.__globals__)
    for callee in _kernels_called(kernel):
        for name, value in py_func.__globals__.items():
            if value is callee:
                scope[name] = serial_twin(callee)
    func = types_module.FunctionType(
        py_func.__code__, scope, py_func.__name__ + "_serial", py_func.__defaults__
    )
    func.__qualname__ = py_func.__qualname__ + "_serial"
    func.__doc__ = py_func.__doc__
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
    twin = _kernel(**options)(func)
    _TWINS[id(kernel)] = twin
    return twin


jit = _kernel()
jit_parallel = _kernel(parallel=True)
# For small helpers called once per node or per move: inlined into the caller, so that
# passing arrays costs no reference counting (an atomic increment and decrement each).
jit_inline = _kernel(inline="always")
prange = numba.prange

# Kernels with a serial and a parallel path take the parallel one only when the
# loop's work (nodes, plus stored entries for a loop over edges) reaches
# PARALLEL_MIN_WORK: below that, starting the threads costs more than the loop.
# The parallel path splits the work into PARALLEL_CHUNKS contiguous ranges (a few
# per thread, for balance). Results do not depend on the path: every output
# element is computed by the same sequential loop.
# These are compile-time constants of the cached kernels; this file is part of
# CACHE_STAMP, so changing one starts a new cache.
PARALLEL_MIN_WORK = 200_000
PARALLEL_CHUNKS = 64


# --- threads -------------------------------------------------------------------------------

# numba's workqueue layer (its fallback where neither TBB nor OpenMP loads) aborts the
# process when two threads launch parallel loops at once; TBB and OpenMP do not.
_THREAD_SAFE_LAYERS = ("tbb", "omp")
_launch_lock = threading.RLock()


def _layer_is_thread_safe() -> bool:
    return bool(_parallel._is_initialized) and _parallel._threading_layer in _THREAD_SAFE_LAYERS


def serial_launches(func):
    """Run ``func`` under one process-wide lock unless the threading layer is thread-safe.

    For the public functions, whose kernels release the GIL and may launch parallel
    loops: under TBB or OpenMP, calls from several threads run at once; under
    workqueue (or before any layer has started, when which one will load is not
    known), they run one after the other.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if _layer_is_thread_safe():
            return func(*args, **kwargs)
        with _launch_lock:
            return func(*args, **kwargs)

    return wrapper
