"""Console users and machine API keys: creation, look-up, the first admin, and the demo users.

Passwords are Argon2id hashes; an API key is shown once and stored as its SHA-256. Plain functions of a
Session; the caller owns the unit of work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.api.passwords import check_password_policy, hash_password
from posgate.api.roles import ROLES
from posgate.errors import ConfigError
from posgate.merchants.errors import FieldError, NotFound, StateConflict
from posgate.store.audit import audit
from posgate.store.base import utcnow
from posgate.store.models import IssuerRoute
from posgate.store.models_onboarding import ApiKey, User

DEMO_PASSWORD = "posgate-demo"
DEMO_USERS = {
    "operator": "operator",
    "reviewer": "reviewer",
    "risk": "risk",
    "finance": "finance",
    "admin": "admin",
}
API_KEY_PREFIX = "pgk_"
_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{1,63}")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a console user (session) or a machine (API key)."""

    username: str
    role: str
    via: str  # session | api_key | cli
    csrf_token: str | None = None
    session_id: int | None = None
    issuer: str | None = None  # role bank: the one issuer whose data it may see


def check_scope(session: Session, role: str, issuer: str | None) -> str | None:
    """A bank user or key names an existing issuer route; other roles name none."""
    if role != "bank":
        if issuer:
            raise FieldError("issuer", "only a bank user or key is scoped to an issuer")
        return None
    if not issuer:
        raise FieldError("issuer", "a bank user or key must name its issuer (an issuer route's name)")
    if session.scalar(select(IssuerRoute.id).where(IssuerRoute.name == issuer)) is None:
        raise FieldError("issuer", f"no issuer route named {issuer!r}")
    return issuer


def check_role(role: str) -> str:
    if role not in ROLES:
        raise FieldError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    actor: str,
    password_hash: str | None = None,
    issuer: str | None = None,
) -> User:
    """A new active user; `password_hash`, if given, is `password`'s hash computed beforehand (outside the
    unit of work, on the console's password pool)."""
    if not _USERNAME.fullmatch(username):
        raise FieldError("username", "must be 2-64 characters: a-z first, then a-z 0-9 _ . -")
    check_role(role)
    issuer = check_scope(session, role, issuer)
    check_password_policy(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise StateConflict(f"user {username} already exists")
    hashed = password_hash or hash_password(password)
    user = User(username=username, password_hash=hashed, role=role, active=True, issuer=issuer)
    session.add(user)
    session.flush()
    audit(session, actor, "create", "user", username, role=role, issuer=issuer)
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[dict[str, object]]:
    return [
        {"username": u.username, "role": u.role, "active": u.active, "created_at": u.created_at.isoformat()}
        for u in session.scalars(select(User).order_by(User.username))
    ]


def set_user_active(session: Session, username: str, active: bool, actor: str) -> None:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user {username}")
    user.active = active
    audit(session, actor, "activate" if active else "deactivate", "user", username)


def ensure_demo_users(session: Session, env: str = "development") -> list[str]:
    """Create the demo users (operator, reviewer, risk, finance, admin; password "posgate-demo") that do
    not exist yet; returns the names created. Refused when POSGATE_ENV=production."""
    if env == "production":
        raise ConfigError("demo users have a published password and are refused when POSGATE_ENV=production")
    created = []
    for username, role in DEMO_USERS.items():
        if find_user(session, username) is None:
            session.add(User(username=username, password_hash=hash_password(DEMO_PASSWORD), role=role))
            audit(session, "system", "create_demo_user", "user", username, role=role)
            created.append(username)
    return created


def ensure_admin(session: Session, password: str | None) -> str | None:
    """The first admin ("admin") when no admin exists: with `password` (POSGATE_ADMIN_PASSWORD) or a
    generated one, which is returned so that the caller prints it once."""
    if session.scalar(select(User.id).where(User.role == "admin").limit(1)) is not None:
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(15)
    check_password_policy(password, "POSGATE_ADMIN_PASSWORD")
    session.add(User(username="admin", password_hash=hash_password(password), role="admin"))
    audit(session, "system", "create_first_admin", "user", "admin")
    return generated


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session, label: str, role: str, actor: str, issuer: str | None = None
) -> tuple[int, str]:
    """A new API key (returned once, never stored in clear)."""
    label = " ".join(label.split())
    if not 1 <= len(label) <= 64:
        raise FieldError("label", "must be 1 to 64 characters")
    check_role(role)
    issuer = check_scope(session, role, issuer)
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    creator = find_user(session, actor)
    row = ApiKey(
        key_hash=_key_hash(key),
        prefix=key[:12],
        label=label,
        role=role,
        issuer=issuer,
        user_id=creator.id if creator else None,
    )
    session.add(row)
    session.flush()
    audit(
        session, actor, "create", "api_key", row.id, label=label, role=role, issuer=issuer, prefix=row.prefix
    )
    return row.id, key


def revoke_api_key(session: Session, key_id: int, actor: str, now: dt.datetime | None = None) -> None:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is not None:
        raise StateConflict(f"API key {key_id} is already revoked")
    row.revoked_at = now or utcnow()
    audit(session, actor, "revoke", "api_key", key_id)


def list_api_keys(session: Session) -> list[dict[str, object]]:
    return [
        {
            "id": k.id,
            "prefix": k.prefix,
            "label": k.label,
            "role": k.role,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in session.scalars(select(ApiKey).order_by(ApiKey.id))
    ]


def principal_for_api_key(session: Session, key: str) -> Principal | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _key_hash(key)))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(username=f"api-key:{row.prefix}", role=row.role, via="api_key", issuer=row.issuer)
