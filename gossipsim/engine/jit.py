"""numba compilation for the fast paths, cached on disk when there is somewhere to write.

``@jit(...)`` is ``numba.njit(cache=True, ...)``, except where numba finds no writable
cache location (a read-only install and no writable home directory): there the function
is compiled in every process instead of failing at import. ``NUMBA_CACHE_DIR`` chooses
the cache location explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit


def jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(**options)`` with the on-disk cache if numba can place one."""

    def compile_lazily(function: Callable[..., Any]) -> Any:
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            if "cannot cache" not in str(exc):
                raise
            return njit(cache=False, **options)(function)

    return compile_lazily
