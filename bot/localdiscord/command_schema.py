"""Validation of synced application commands, with the rules Discord enforces on sync.

A command tree that syncs here will not be refused by Discord for bad names, descriptions,
option counts or option order (discord.py raises ``CommandSyncFailure`` on the 400).
"""

from __future__ import annotations

import re
from typing import Any

from bot.localdiscord.errors import FormErrors

_NAME = re.compile(r"^[-_\w]{1,32}$")
CHAT_INPUT = 1
SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
MAX_OPTIONS = 25
MAX_CHOICES = 25
MAX_DESCRIPTION = 100


def validate_commands(commands: Any) -> None:
    errors = FormErrors()
    if not isinstance(commands, list):
        errors.add((), "BASE_TYPE_ARRAY", "Must be an array.")
        errors.raise_if_any()
        return
    seen: set[tuple[int, str]] = set()
    for i, command in enumerate(commands):
        if not isinstance(command, dict):
            errors.add((i,), "MODEL_TYPE_CONVERT", "Only dictionaries may be used.")
            continue
        kind = int(command.get("type", CHAT_INPUT))
        key = (kind, str(command.get("name")))
        if key in seen:
            errors.add((i, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate name")
        seen.add(key)
        _validate_node(command, (i,), errors, chat_input=kind == CHAT_INPUT, depth=0)
    errors.raise_if_any()


def _validate_node(
    node: dict[str, Any],
    path: tuple[str | int, ...],
    errors: FormErrors,
    *,
    chat_input: bool,
    depth: int,
) -> None:
    name = node.get("name")
    if not isinstance(name, str) or not name:
        errors.required((*path, "name"))
    elif chat_input and (not _NAME.match(name) or name != name.lower()):
        errors.add(
            (*path, "name"),
            "APPLICATION_COMMAND_INVALID_NAME",
            f"Command name is invalid: {name!r} (lowercase, 1-32 of letters, digits, - and _)",
        )
    if not chat_input:
        return
    description = node.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= MAX_DESCRIPTION:
        errors.add(
            (*path, "description"),
            "BASE_TYPE_BAD_LENGTH",
            f"Must be between 1 and {MAX_DESCRIPTION} in length.",
        )
    options = node.get("options") or []
    if len(options) > MAX_OPTIONS:
        errors.max_length((*path, "options"), MAX_OPTIONS)
    names: set[str] = set()
    seen_optional = False
    for j, option in enumerate(options):
        option_path = (*path, "options", j)
        option_type = int(option.get("type", 0))
        if option.get("name") in names:
            errors.add(
                (*option_path, "name"),
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option name already exists",
            )
        names.add(str(option.get("name")))
        if option_type in (SUB_COMMAND, SUB_COMMAND_GROUP):
            if depth >= 2 or (option_type == SUB_COMMAND_GROUP and depth >= 1):
                errors.add(option_path, "APPLICATION_COMMAND_TOO_DEEP", "Too many nested levels")
            _validate_node(option, option_path, errors, chat_input=True, depth=depth + 1)
            continue
        _validate_node_text(option, option_path, errors)
        if option.get("required"):
            if seen_optional:
                errors.add(
                    option_path,
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(option.get("choices") or []) > MAX_CHOICES:
            errors.max_length((*option_path, "choices"), MAX_CHOICES)


def _validate_node_text(
    option: dict[str, Any], path: tuple[str | int, ...], errors: FormErrors
) -> None:
    name = option.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != name.lower():
        errors.add(
            (*path, "name"), "APPLICATION_COMMAND_INVALID_NAME", f"Option name is invalid: {name!r}"
        )
    description = option.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= MAX_DESCRIPTION:
        errors.add(
            (*path, "description"),
            "BASE_TYPE_BAD_LENGTH",
            f"Must be between 1 and {MAX_DESCRIPTION} in length.",
        )
