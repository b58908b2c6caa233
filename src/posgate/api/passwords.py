"""Password hashing with Argon2id (argon2-cffi, OWASP's minimum parameters: 19 MiB, 2 passes)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from posgate.merchants.errors import FieldError

MIN_LENGTH = 10
MAX_LENGTH = 200
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# verified when the user does not exist, so that both cases take the same time
_DUMMY_HASH = _HASHER.hash("posgate-no-such-user")


def check_password_policy(password: str, field: str = "password") -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise FieldError(field, f"must be {MIN_LENGTH} to {MAX_LENGTH} characters, got {len(password)}")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
