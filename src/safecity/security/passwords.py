"""Password hashing: argon2id (RFC 9106) via argon2-cffi.

Hashes carry their own parameters, so raising the cost later needs no migration: on the
next successful login :func:`needs_rehash` says so and the caller stores a fresh hash.
"""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from safecity.platform.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1024

# RFC 9106 "second recommended option" (64 MiB, t=3, p=4), argon2id.
DEFAULT_TIME_COST = 3
DEFAULT_MEMORY_KIB = 65_536
DEFAULT_PARALLELISM = 4

_hasher = PasswordHasher(
    time_cost=DEFAULT_TIME_COST,
    memory_cost=DEFAULT_MEMORY_KIB,
    parallelism=DEFAULT_PARALLELISM,
    type=Type.ID,
)
# A hash verified when there is no real one (unknown user), so that a wrong username
# costs as much time as a wrong password. Made on first use.
_dummy_hash: str | None = None


def configure(*, time_cost: int, memory_cost: int, parallelism: int) -> dict[str, int]:
    """Use other argon2id parameters for new hashes (tests use cheap ones); returns the
    previous parameters. Existing hashes are upgraded on their owner's next login."""
    global _hasher, _dummy_hash
    previous = {
        "time_cost": _hasher.time_cost,
        "memory_cost": _hasher.memory_cost,
        "parallelism": _hasher.parallelism,
    }
    _hasher = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )
    _dummy_hash = None
    return previous


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("safecity-dummy-password-never-valid")
    return _dummy_hash


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (PHC string format)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises for a bad hash.

    With ``password_hash=None`` (no password set) it still spends the time of one
    verification and returns ``False``.
    """
    if password_hash is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy(), password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether ``password_hash`` was made with other parameters (or another algorithm)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def check_policy(password: str, *, username: str = "") -> None:
    """Raise :class:`InvalidInput` for a password too weak to accept."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password must have at most {MAX_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise InvalidInput("password must not contain the username")
    if len(set(password)) < 5:
        raise InvalidInput("password is too repetitive")
