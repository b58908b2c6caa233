"""Where the console checks passwords: a small pool of threads of its own (`login_hash_workers`, 1 by
default) at a lower CPU priority, never the event loop nor the request threads, and never more than
`login_hash_queue` checks running or waiting — beyond that a login is refused at once (503 with
Retry-After) instead of queueing memory (19 MiB per Argon2 check) and CPU behind it. argon2-cffi releases
the GIL while hashing, so a check in progress costs the event loop — and the POS port that `posgate up`
serves on it — nothing but the CPU the pool's threads take, which the lower priority yields first."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from posgate.api.errors import Overloaded

T = TypeVar("T")
NICE = 10  # the pool threads' niceness (Linux: a per-thread attribute)
RETRY_AFTER_S = 1


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class HashWorker:
    """Runs password checks (and hashes) `workers` at a time, with at most `queue` admitted at once."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.queue = max(queue, workers)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="posgate-passwords", initializer=_lower_priority
        )
        self._admitted = threading.BoundedSemaphore(self.queue)
        self._lock = threading.Lock()
        self.running = 0
        self.peak_running = 0  # the most checks ever computed at once (tests and diagnostics)

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """A place among the `queue` checks admitted at once, for a whole login (`Overloaded` if none is
        free: nothing waits, nothing is read from the store)."""
        if not self._admitted.acquire(blocking=False):
            raise Overloaded(
                "password checks: too many logins at once; try again in a second", retry_after_s=RETRY_AFTER_S
            )
        try:
            yield
        finally:
            self._admitted.release()

    def run(self, work: Callable[[], T]) -> T:
        """`work()` on the pool (at most `workers` at once); the caller's thread waits for it."""
        return self._pool.submit(self._counted, work).result()

    def _counted(self, work: Callable[[], T]) -> T:
        with self._lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        try:
            return work()
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
