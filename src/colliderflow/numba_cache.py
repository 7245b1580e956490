"""numba's on-disk cache for kernels that call compiled functions of other modules.

numba keys a cached function on its own source file only (its modification time and size). A kernel
that calls a jitted function of another module has that callee's machine code compiled into its own
cached code, so after an edit to the callee's module alone the stale code would still be loaded,
silently. The rule in this package:

* `numba.njit(cache=True)` only for functions that call no jitted function of another module;
* `cached_njit` for the others: its cache is also keyed on the source files of the project modules the
  function's module takes compiled functions from (transitively), so an edit to any of them recompiles.

tests/test_numba_cache.py enforces the rule over the whole package.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numba
from numba.core.caching import CompileResultCacheImpl, FunctionCache
from numba.core.registry import CPUDispatcher

_PACKAGE = __name__.split(".")[0]


def _project_module(value: Any) -> str | None:
    """The project module that `value` (a jitted function or a module) comes from, if any."""
    name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
    if isinstance(value, (CPUDispatcher, ModuleType)) and name and name.split(".")[0] == _PACKAGE:
        return name
    return None


def dependency_modules(module_name: str) -> set[str]:
    """Project modules whose jitted functions (or which themselves) `module_name`'s globals refer to,
    transitively, `module_name` excluded. Read when the function is decorated: module-level imports
    come first, so they are all there."""
    seen: set[str] = set()
    todo = [module_name]
    while todo:
        module = sys.modules.get(todo.pop())
        if module is None:
            continue
        for value in vars(module).values():
            name = _project_module(value)
            if name and name != module_name and name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def dependency_stamp(module_name: str) -> tuple[tuple[str, float, int], ...]:
    """(file, mtime, size) of every dependency module's source: what the cache index is checked against."""
    stamps = []
    for name in sorted(dependency_modules(module_name)):
        path = getattr(sys.modules[name], "__file__", None)
        if path:
            st = os.stat(path)
            stamps.append((os.path.basename(path), st.st_mtime, st.st_size))
    return tuple(stamps)


class _DependencyStampLocator:
    """numba's own cache locator, with the dependencies' stamp added to the source stamp."""

    def __init__(self, locator: Any, module_name: str) -> None:
        self._locator = locator
        self._module_name = module_name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._locator, name)

    def get_source_stamp(self) -> Any:
        return self._locator.get_source_stamp(), dependency_stamp(self._module_name)


class _DependencyCacheImpl(CompileResultCacheImpl):
    def __init__(self, py_func: Callable[..., Any]) -> None:
        super().__init__(py_func)
        self._locator = _DependencyStampLocator(self._locator, py_func.__module__)


class DependencyAwareCache(FunctionCache):
    """A FunctionCache whose index goes stale when a dependency module's source changes."""

    _impl_class = _DependencyCacheImpl


def cached_njit(**options: Any) -> Callable[[Callable[..., Any]], CPUDispatcher]:
    """`numba.njit(cache=True, **options)`, for functions that call jitted functions of other modules."""
    if "cache" in options:
        raise ValueError("cached_njit always caches; do not pass cache=")

    def decorate(func: Callable[..., Any]) -> CPUDispatcher:
        dispatcher = numba.njit(**options)(func)
        dispatcher._cache = DependencyAwareCache(dispatcher.py_func)  # what njit(cache=True) sets, keyed wider
        return dispatcher

    return decorate
