"""Errors of sign-in, tokens, sessions and user management.

Each carries the HTTP status the API answers with (``http_status``), so the routes map them
without guessing. Sign-in errors never say whether the e-mail exists.
"""

from __future__ import annotations

from datetime import datetime

from passerelle.errors import PasserelleError


class GovernanceError(PasserelleError):
    http_status = 400


class NotAuthenticated(GovernanceError):
    """No valid credential: wrong password, unknown or disabled account, bad token."""

    http_status = 401


class SignInFailed(NotAuthenticated):
    def __init__(self) -> None:
        super().__init__("The e-mail or the password is wrong.",
                         "Check both, or ask an administrator to reset your password.")


class AccountLocked(NotAuthenticated):
    http_status = 429

    def __init__(self, until: datetime) -> None:
        self.until = until
        super().__init__(f"Too many failed sign-ins: the account is locked until "
                         f"{until:%Y-%m-%d %H:%M} UTC.",
                         "Wait, or ask an administrator to reset the password.")


class TooManyAttempts(NotAuthenticated):
    http_status = 429

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__("Too many failed sign-ins from this address.",
                         f"Try again in {max(1, retry_after_seconds // 60)} minute(s).")


class TokenRejected(NotAuthenticated):
    pass


class SessionExpired(NotAuthenticated):
    def __init__(self) -> None:
        super().__init__("Your session has ended.", "Sign in again.")


class CsrfFailed(GovernanceError):
    http_status = 403

    def __init__(self) -> None:
        super().__init__("The form's security token is missing or wrong.",
                         "Reload the page and submit the form again.")


class PermissionDenied(GovernanceError):
    """A known caller without the permission (or the token scope) a route needs."""

    http_status = 403

    def __init__(self, needed: str, what: str = "permission") -> None:
        self.needed = needed
        super().__init__(f"This needs the {what} '{needed}'.",
                         "Ask an administrator for it (a role that grants it, or a token "
                         "with that scope).")


class RateLimited(GovernanceError):
    http_status = 429

    def __init__(self, retry_after_seconds: int, reason: str = "Too many requests.") -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(reason, f"Retry in {retry_after_seconds} second(s).")


class WeakPassword(GovernanceError):
    pass


class UnknownUser(GovernanceError, LookupError):
    http_status = 404


class UnknownToken(GovernanceError, LookupError):
    http_status = 404


class UnknownRole(GovernanceError):
    pass


class UserExists(GovernanceError):
    http_status = 409
