"""Signing in to the console: a place reserved under the login limits first (`throttle`, in the store),
then the password check on the bounded password pool (`hash_worker`, Argon2 is slow on purpose) outside
any transaction, then the failure or the new session in its own short unit of work. A failure that fills
a limit is written to the audit trail (`login_locked`)."""

from __future__ import annotations

from dataclasses import dataclass

from posgate.api import throttle
from posgate.api.context import AppContext
from posgate.api.errors import RateLimited, Unauthenticated
from posgate.api.passwords import verify_password
from posgate.api.sessions import close_session, make_cookie, open_session
from posgate.api.users import Principal, find_user
from posgate.store.audit import audit
from posgate.store.base import utcnow


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    username: str
    role: str
    csrf_token: str


def _refusal(locked: throttle.LockedOut) -> RateLimited:
    minutes = max(1, round(locked.retry_after_s / 60))
    if locked.counter.what == "username":
        message = f"username: {locked.count} failed logins from this address; try again in {minutes} minutes"
    else:
        message = f"too many failed logins from this address; try again in {minutes} minutes"
    field = "username" if locked.counter.what == "username" else None
    return RateLimited(message, field, locked.retry_after_s)


def login(ctx: AppContext, username: str, password: str, ip: str) -> SignedIn:
    now = utcnow()
    username = username.strip()[:64]
    limits = ctx.login_limits

    def look(session):  # type: ignore[no-untyped-def]
        reservation = throttle.reserve(session, username, ip, now, limits)
        user = find_user(session, username)
        return reservation, (user.password_hash if user else None), bool(user and user.active)

    with ctx.hash_worker.admitted():
        try:
            reservation, password_hash, active = ctx.transact(look)
        except throttle.LockedOut as locked:
            raise _refusal(locked) from None
        try:
            right = ctx.hash_worker.run(lambda: verify_password(password_hash, password)) and active
        except BaseException:
            ctx.transact(lambda s: throttle.release(s, reservation, signed_in=False))
            raise
    if not right:

        def failed(session):  # type: ignore[no-untyped-def]
            for counter in reservation.reached():
                audit(
                    session,
                    throttle.stored_username(username),
                    "login_locked",
                    "address" if counter.what == "address" else "user",
                    ip if counter.what == "address" else throttle.stored_username(username),
                    now,
                    ip=ip,
                    limit=counter.what,
                    failures=counter.limit,
                    window_s=int(limits.window.total_seconds()),
                )
            throttle.forget_old(session, now, limits.window)

        ctx.transact(failed)
        raise Unauthenticated("password: wrong username or password", "password")

    def start(session):  # type: ignore[no-untyped-def]
        user = find_user(session, username)
        token, csrf = open_session(session, user, ip, now)
        throttle.release(session, reservation, signed_in=True)
        audit(session, username, "login", "user", username, now, ip=ip)
        return token, csrf, user.role

    token, csrf, role = ctx.transact(start)
    return SignedIn(make_cookie(ctx.cookie_key, token), username, role, csrf)


def logout(ctx: AppContext, who: Principal) -> None:
    if who.session_id is not None:
        session_id = who.session_id
        ctx.transact(lambda s: close_session(s, session_id))
