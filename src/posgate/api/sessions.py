"""Console sessions, in the database (never in process memory, so any number of console nodes agree).

The cookie holds a random token signed with itsdangerous under a key sealed in the keys table (owner
"console/session"); the database holds the token's SHA-256, the user, a CSRF token and the expiry, so that
logging out ends the session everywhere. The login limits are `throttle`'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from posgate.api.users import Principal
from posgate.store.keys import KeySealer, get_keys, put_key
from posgate.store.models_onboarding import ConsoleSession, User

COOKIE_NAME = "posgate_session"
SESSION_TTL = dt.timedelta(hours=12)


def cookie_key(session: Session, sealer: KeySealer) -> bytes:
    """The cookie-signing key, created on first use."""
    key = get_keys(session, sealer, "console", "session", actor="console", use="sign session cookies").get(
        "COOKIE"
    )
    if key is None:
        key = secrets.token_bytes(32)
        kcv = hashlib.sha256(key).hexdigest()[:8].upper()
        put_key(session, sealer, "console", "session", "COOKIE", key, kcv, actor="console")
    return key


def signer(key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt="posgate-console-session")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def open_session(session: Session, user: User, ip: str, now: dt.datetime) -> tuple[str, str]:
    """A new session for `user`; returns (token for the cookie, CSRF token)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(
        ConsoleSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    return token, csrf


def principal_for_token(session: Session, token: str, now: dt.datetime) -> Principal | None:
    row = session.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_hash == _token_hash(token))
    ).first()
    if row is None:
        return None
    console_session, user = row
    if console_session.expires_at <= now or not user.active:
        return None
    return Principal(
        username=user.username,
        role=user.role,
        via="session",
        csrf_token=console_session.csrf_token,
        session_id=console_session.id,
        issuer=user.issuer,
    )


def close_session(session: Session, session_id: int) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))


def read_cookie(key: bytes, cookie: str) -> str | None:
    try:
        token = signer(key).loads(cookie, max_age=int(SESSION_TTL.total_seconds()))
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def make_cookie(key: bytes, token: str) -> str:
    return signer(key).dumps(token)
