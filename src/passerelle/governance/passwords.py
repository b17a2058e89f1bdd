"""Password hashing (Argon2id, argon2-cffi's RFC 9106 defaults) and the password policy."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from passerelle.governance.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 1024  # longer input only costs the server time

_hasher = PasswordHasher()


def check_policy(password: str, email: str) -> None:
    """At least 12 characters, not the e-mail (nor its part before @), not one repeated
    character. Length beats composition rules (NIST SP 800-63B)."""
    lowered = password.strip().lower()
    local = email.lower().partition("@")[0]
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password has {len(password)} characters; at least "
                           f"{MIN_LENGTH} are needed.", "A few unrelated words make a good one.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"The password is longer than {MAX_LENGTH} characters.",
                           "Choose a shorter one.")
    if lowered in (email.lower(), local) or len(set(password)) == 1:
        raise WeakPassword("The password is the e-mail address or one repeated character.",
                           "Choose a password nobody could guess from the account.")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(password_hash)


@cache
def dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so the answer takes as long either way."""
    return _hasher.hash("passerelle-no-such-user")
