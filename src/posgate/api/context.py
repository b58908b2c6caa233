"""What every route needs, built once by `create_app`: the store, the vault, settings, the upload folder,
the cookie-signing key and the templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from posgate.bootstrap import StoreHandle
from posgate.config import Settings
from posgate.merchants.uploads import UploadStore

T = TypeVar("T")


@dataclass
class AppContext:
    handle: StoreHandle
    settings: Settings
    uploads: UploadStore
    cookie_key: bytes
    templates: Jinja2Templates

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
