"""User-facing errors raised by the application service.

Every `ServiceError` message is safe to show in Discord as-is: short, specific, and free of
secrets. The Discord layer turns them into replies; anything else is logged as a bug.
"""

from __future__ import annotations

__all__ = [
    "ConfirmationExpired",
    "CredentialsMissing",
    "GuildHalted",
    "NotFound",
    "PreviewMismatch",
    "ServiceError",
]


class ServiceError(Exception):
    """A refusal or failure the user should read (the message says what and why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class GuildHalted(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            "Trading is halted in this server: no new orders until an admin runs `!tt resume`."
        )


class ConfirmationExpired(ServiceError):
    def __init__(self, seconds: int) -> None:
        super().__init__(
            f"This preview is older than {seconds} s and has expired — nothing was placed. "
            "Send the command again for a fresh preview."
        )


class PreviewMismatch(ServiceError):
    """The confirmed preview no longer matches the guild's state (e.g. environment changed)."""


class CredentialsMissing(ServiceError):
    pass


class NotFound(ServiceError):
    pass
