"""`Store`: the asyncio shells' door to the database. Work is a plain function of a `Session`, run in a
dedicated thread pool inside one transaction (commit on return, rollback on exception) — one unit of work.
`StoreHandle`: an opened store with the card vault of its master key (what `bootstrap.store.open_store`
returns and the API, the wallets and the tools are given)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from posgate.security.at_rest import CardVault
from posgate.store.db import session_factory

T = TypeVar("T")


class Store:
    """An engine, a session factory and the thread pool that runs units of work off the event loop."""

    def __init__(self, engine: Engine, threads: int = 4, inline: bool = False) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self.inline = inline
        #: called with the seconds each commit took (the operations port's histogram); None: not timed
        self.observe_commit: Callable[[float], None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="posgate-db")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def transact(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction, synchronously."""
        observe = self.observe_commit
        if observe is None:
            with self.sessions() as session, session.begin():
                return work(session)
        with self.sessions() as session:
            with session.begin():
                result = work(session)
                committing = time.perf_counter()  # the block's end flushes and commits
            observe(time.perf_counter() - committing)
            return result

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction on the store's thread pool — or, for an embedded store
        (`inline`), right here on the event loop: SQLite calls are short CPU work, and handing them to a
        thread only adds GIL hand-offs."""
        if self.inline:
            return self.transact(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transact, work)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
        self.engine.dispose()


@dataclass
class StoreHandle:
    """An opened store and the card vault of its master key."""

    store: Store
    vault: CardVault
