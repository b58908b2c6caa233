"""Signing in to the console: the rate limit first, the password check outside any transaction (Argon2 is
slow on purpose), then the failure or the new session in its own short unit of work."""

from __future__ import annotations

from dataclasses import dataclass

from posgate.api.context import AppContext
from posgate.api.errors import RateLimited, Unauthenticated
from posgate.api.passwords import verify_password
from posgate.api.sessions import (
    MAX_FAILURES,
    WINDOW,
    close_session,
    make_cookie,
    open_session,
    recent_failures,
    record_failure,
)
from posgate.api.users import Principal, find_user
from posgate.store.audit import audit
from posgate.store.models import utcnow


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    username: str
    role: str
    csrf_token: str


def login(ctx: AppContext, username: str, password: str, ip: str) -> SignedIn:
    now = utcnow()
    username = username.strip()[:64]

    def look(session):  # type: ignore[no-untyped-def]
        user = find_user(session, username)
        failures = recent_failures(session, username, ip, now)
        return (user.password_hash if user else None, bool(user and user.active), failures)

    password_hash, active, failures = ctx.transact(look)
    if failures >= MAX_FAILURES:
        minutes = int(WINDOW.total_seconds() // 60)
        raise RateLimited(
            f"username: {failures} failed logins from this address; try again in {minutes} minutes",
            "username",
        )
    if not verify_password(password_hash, password) or not active:
        ctx.transact(lambda s: record_failure(s, username, ip, now))
        raise Unauthenticated("password: wrong username or password", "password")

    def start(session):  # type: ignore[no-untyped-def]
        user = find_user(session, username)
        token, csrf = open_session(session, user, ip, now)
        audit(session, username, "login", "user", username, now, ip=ip)
        return token, csrf, user.role

    token, csrf, role = ctx.transact(start)
    return SignedIn(make_cookie(ctx.cookie_key, token), username, role, csrf)


def logout(ctx: AppContext, who: Principal) -> None:
    if who.session_id is not None:
        session_id = who.session_id
        ctx.transact(lambda s: close_session(s, session_id))
