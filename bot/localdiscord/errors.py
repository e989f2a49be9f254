"""Discord API errors as the real API shapes them (status, JSON code, message, form errors)."""

from __future__ import annotations

from typing import Any


class DiscordApiError(Exception):
    """Raised by a route handler; turned into Discord's JSON error response."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def describe(self) -> str:
        """One line per form error, the way discord.py words them ("In content: ...")."""
        if not self.errors:
            return self.message
        lines: list[str] = []
        _flatten(self.errors, "", lines)
        return f"{self.message}: " + "; ".join(lines)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def _flatten(node: dict[str, Any], path: str, out: list[str]) -> None:
    for key, value in node.items():
        if key == "_errors":
            where = path or "body"
            out.extend(f"In {where}: {e['message']}" for e in value)
        elif isinstance(value, dict):
            _flatten(value, f"{path}.{key}" if path else key, out)


def unauthorized() -> DiscordApiError:
    return DiscordApiError(401, 0, "401: Unauthorized")


def not_found() -> DiscordApiError:
    return DiscordApiError(404, 0, "404: Not Found")


def unknown_channel() -> DiscordApiError:
    return DiscordApiError(404, 10003, "Unknown Channel")


def unknown_guild() -> DiscordApiError:
    return DiscordApiError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordApiError:
    return DiscordApiError(404, 10007, "Unknown Member")


def unknown_message() -> DiscordApiError:
    return DiscordApiError(404, 10008, "Unknown Message")


def unknown_user() -> DiscordApiError:
    return DiscordApiError(404, 10013, "Unknown User")


def unknown_webhook() -> DiscordApiError:
    return DiscordApiError(404, 10015, "Unknown Webhook")


def unknown_interaction() -> DiscordApiError:
    return DiscordApiError(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordApiError:
    return DiscordApiError(400, 40060, "Interaction has already been acknowledged.")


def missing_access() -> DiscordApiError:
    return DiscordApiError(403, 50001, "Missing Access")


def cannot_edit_others() -> DiscordApiError:
    return DiscordApiError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> DiscordApiError:
    return DiscordApiError(400, 50006, "Cannot send an empty message")


def cannot_dm_user() -> DiscordApiError:
    return DiscordApiError(403, 50007, "Cannot send messages to this user")


def missing_permissions() -> DiscordApiError:
    return DiscordApiError(403, 50013, "Missing Permissions")


def bad_request(message: str) -> DiscordApiError:
    return DiscordApiError(400, 50035, f"Invalid Form Body: {message}")


def too_large() -> DiscordApiError:
    return DiscordApiError(413, 40005, "Request entity too large")


class FormErrors:
    """Collects Discord's nested "Invalid Form Body" errors (code 50035).

    Discord nests errors by JSON path, e.g. ``{"embeds": {"0": {"title": {"_errors": [...]}}}}``;
    discord.py flattens that into "In embeds.0.title: Must be 256 or fewer in length.".
    """

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: tuple[str | int, ...], limit: int) -> None:
        self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def required(self, path: tuple[str | int, ...]) -> None:
        self.add(path, "BASE_TYPE_REQUIRED", "This field is required")

    def raise_if_any(self) -> None:
        if self.tree:
            raise DiscordApiError(400, 50035, "Invalid Form Body", errors=self.tree)
