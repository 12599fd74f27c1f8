"""Every call into a store, counted and timed (``instastore.metrics``), by one wrapper
around the adapter instead of a line in each of its methods.

``metered(adapter)`` answers like the adapter: coroutine methods are timed until they
return or raise, async-generator methods (scans, streamed reads) until their last item;
anything else passes through untouched. The store label is what the operator runs
(cassandra, sqlite, webhdfs, files), not the adapter's class.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

from instastore import metrics

T = TypeVar("T")

# Adapter name -> the store an operator knows it by (HDFS is reached through WebHDFS).
STORE_LABELS = {"hdfs": "webhdfs"}


class _Metered:
    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self._label = STORE_LABELS.get(adapter.name, adapter.name)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._adapter, name)
        if name.startswith("_") or not callable(attr):
            return attr
        if inspect.iscoroutinefunction(attr):
            wrapped: Callable[..., Any] = _timed_call(self._label, name, attr)
        elif inspect.isasyncgenfunction(attr):
            wrapped = _timed_stream(self._label, name, attr)
        else:
            return attr
        self.__dict__[name] = wrapped  # made once per method
        return wrapped

    def __repr__(self) -> str:
        return f"metered({self._adapter!r})"


def _timed_call(store: str, operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        with metrics.store_call(store, operation):
            return await method(*args, **kwargs)

    return call


def _timed_stream(
    store: str, operation: str, method: Callable[..., AsyncIterator[Any]]
) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        with metrics.store_call(store, operation):
            async for item in method(*args, **kwargs):
                yield item

    return stream


def metered(adapter: T) -> T:
    """``adapter`` with every call counted and timed; it keeps the adapter's type."""
    return cast(T, _Metered(adapter))
