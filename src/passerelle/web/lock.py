"""One warehouse connection (the web app's own) serves the pages one at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_lock = threading.Lock()


def locked(work: Callable[[], T]) -> T:
    with _lock:
        return work()
