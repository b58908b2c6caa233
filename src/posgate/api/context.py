"""What every route needs, built once by `create_app`: the store, the vault, settings, the upload folder,
the cookie-signing key, the templates, the login limits and the password pool."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from posgate.api.hash_worker import HashWorker
from posgate.api.throttle import Limits
from posgate.config import Settings
from posgate.merchants.uploads import UploadStore
from posgate.store.runtime import StoreHandle

T = TypeVar("T")


@dataclass
class AppContext:
    handle: StoreHandle
    settings: Settings
    uploads: UploadStore
    cookie_key: bytes
    templates: Jinja2Templates
    login_limits: Limits = field(default_factory=lambda: Limits(5, 20, dt.timedelta(minutes=5)))
    hash_worker: HashWorker = field(default_factory=lambda: HashWorker(workers=1, queue=8))
    wallets: Any = None  # wallets.runtime.WalletRuntime when this node takes wallet payments

    def transact(self, work: Callable[[Session], T]) -> T:
        """One unit of work (commit on return, rollback on exception)."""
        return self.handle.store.transact(work)

    @property
    def vault(self):  # type: ignore[no-untyped-def]
        return self.handle.vault


def app_context(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def over_tls(request: Request) -> bool:
    """Whether the caller reached us over HTTPS (console TLS on, or the request says https): cookies are
    then `Secure`."""
    return request.url.scheme == "https" or app_context(request).settings.console_tls
