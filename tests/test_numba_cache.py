"""numba's cache is keyed on a function's own file: compiled callees from other modules need cached_njit."""

from __future__ import annotations

import importlib
import os
import pkgutil
import types

import numba  # noqa: F401  (the registry below needs numba initialised)
from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher

import colliderflow
from colliderflow import numba_cache
from colliderflow.generate import calorimeter


def _modules() -> list[types.ModuleType]:
    names = [m.name for m in pkgutil.walk_packages(colliderflow.__path__, "colliderflow.")
             if not m.name.endswith("__main__")]  # fmt: skip
    return [importlib.import_module(name) for name in names]


def _callees(dispatcher: CPUDispatcher) -> list[CPUDispatcher]:
    """Jitted functions the dispatcher's code names: globals, or attributes of modules it names."""
    code, scope = dispatcher.py_func.__code__, dispatcher.py_func.__globals__
    found = []
    for name in code.co_names:
        value = scope.get(name)
        if isinstance(value, CPUDispatcher):
            found.append(value)
        elif isinstance(value, types.ModuleType):
            found += [getattr(value, n) for n in code.co_names if isinstance(getattr(value, n, None), CPUDispatcher)]
    return found


def _reachable(dispatcher: CPUDispatcher) -> list[CPUDispatcher]:
    seen: dict[int, CPUDispatcher] = {}
    todo = [dispatcher]
    while todo:
        for callee in _callees(todo.pop()):
            if id(callee) not in seen:
                seen[id(callee)] = callee
                todo.append(callee)
    return list(seen.values())


def test_plain_cached_kernels_call_no_jitted_function_of_another_module():
    offenders = []
    for module in _modules():
        for name, value in vars(module).items():
            if not (isinstance(value, CPUDispatcher) and value.__module__ == module.__name__):
                continue
            if type(value._cache) is not FunctionCache:  # not cached, or cached_njit
                continue
            other = sorted({c.__module__ for c in _reachable(value) if c.__module__ != module.__name__})
            if other:
                offenders.append(f"{module.__name__}.{name} calls jitted functions of {other}")
    assert not offenders, "use colliderflow.numba_cache.cached_njit instead of njit(cache=True):\n" + "\n".join(
        offenders
    )


def test_cross_module_kernels_use_the_dependency_aware_cache():
    assert isinstance(calorimeter._deposit_kernel._cache, numba_cache.DependencyAwareCache)
    deps = numba_cache.dependency_modules(calorimeter.__name__)
    assert {"colliderflow.generate.showers", "colliderflow.generate.helix"} <= deps
    assert calorimeter.__name__ not in deps


def test_an_edit_to_a_callee_module_changes_the_cache_stamp(monkeypatch):
    locator = calorimeter._deposit_kernel._cache._impl.locator
    before = locator.get_source_stamp()
    real_stat = os.stat

    def edited(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if str(path).endswith("showers.py"):
            return os.stat_result((*st[:8], st.st_mtime + 1.0, st[9]))
        return st

    monkeypatch.setattr(numba_cache.os, "stat", edited)
    after = locator.get_source_stamp()
    assert after[0] == before[0]  # calorimeter.py itself is unchanged
    assert after != before
