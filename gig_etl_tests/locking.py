"""Holding a lock elsewhere while a test tries it."""

import threading
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator


@contextmanager
def held_in_another_thread(lock: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
    """`lock()` held by a thread of its own for the block (a thread opens its own
    lock file or Postgres connection, as another process would), then released."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30), "the other thread never got the lock"
        yield
    finally:
        release.set()
        holder.join()
