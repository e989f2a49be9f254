"""Discord's message limits, enforced like the real API (HTTP 400, code 50035 or 50006).

A bot that passes here will not be rejected by Discord for oversized content, too many embeds
or fields, embed text over 6000 characters, or malformed buttons.
"""

from __future__ import annotations

from typing import Any

from bot.localdiscord.errors import FormErrors, bad_request, empty_message

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
ACTION_ROWS_MAX = 5
ACTION_ROW_BUTTONS_MAX = 5
BUTTON_LABEL_MAX = 80
CUSTOM_ID_MAX = 100
NONCE_MAX = 25
COMPONENTS_V2_FLAG = 1 << 15

_LINK_STYLE = 5
_BUTTON = 2
_ACTION_ROW = 1


def validate_message(body: dict[str, Any], *, creating: bool, has_files: bool = False) -> None:
    """Raise `DiscordApiError` for anything Discord would refuse in a message body.

    ``creating`` adds the empty-message rule; edits only validate the keys they carry.
    """
    errors = FormErrors()
    content = body.get("content")
    if content is not None:
        if not isinstance(content, str):
            errors.add(("content",), "BASE_TYPE_STRING", "Must be a string.")
        elif len(content) > CONTENT_MAX:
            errors.max_length(("content",), CONTENT_MAX)
    nonce = body.get("nonce")
    if isinstance(nonce, str) and len(nonce) > NONCE_MAX:
        errors.max_length(("nonce",), NONCE_MAX)
    embeds = body.get("embeds")
    if embeds is not None:
        _validate_embeds(embeds, errors)
    components = body.get("components")
    if components is not None:
        v2 = bool(int(body.get("flags") or 0) & COMPONENTS_V2_FLAG)
        _validate_components(components, errors, components_v2=v2)
    _validate_allowed_mentions(body.get("allowed_mentions"))
    errors.raise_if_any()
    if creating and not _has_visible_payload(body, has_files):
        raise empty_message()


def _has_visible_payload(body: dict[str, Any], has_files: bool) -> bool:
    content = body.get("content")
    return bool(
        (isinstance(content, str) and content.strip())
        or body.get("embeds")
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or has_files
    )


def _validate_embeds(embeds: Any, errors: FormErrors) -> None:
    if not isinstance(embeds, list):
        errors.add(("embeds",), "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if len(embeds) > EMBEDS_MAX:
        errors.max_length(("embeds",), EMBEDS_MAX)
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors.add(("embeds", i), "MODEL_TYPE_CONVERT", "Only dictionaries may be used.")
            continue
        total += _validate_embed(i, embed, errors)
    if total > EMBED_TOTAL_MAX:
        errors.add(
            ("embeds",),
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}",
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _validate_embed(i: int, embed: dict[str, Any], errors: FormErrors) -> int:
    """Validate one embed and return its character count toward the 6000 total."""
    title = _text(embed.get("title"))
    description = _text(embed.get("description"))
    footer = _text((embed.get("footer") or {}).get("text"))
    author = _text((embed.get("author") or {}).get("name"))
    for key, text, limit in (
        (("title",), title, EMBED_TITLE_MAX),
        (("description",), description, EMBED_DESCRIPTION_MAX),
        (("footer", "text"), footer, EMBED_FOOTER_MAX),
        (("author", "name"), author, EMBED_AUTHOR_MAX),
    ):
        if len(text) > limit:
            errors.max_length(("embeds", i, *key), limit)
    size = len(title) + len(description) + len(footer) + len(author)
    fields = embed.get("fields") or []
    if len(fields) > EMBED_FIELDS_MAX:
        errors.max_length(("embeds", i, "fields"), EMBED_FIELDS_MAX)
    for j, fld in enumerate(fields):
        if not isinstance(fld, dict):
            errors.add(
                ("embeds", i, "fields", j), "MODEL_TYPE_CONVERT", "Only dictionaries may be used."
            )
            continue
        name = _text(fld.get("name"))
        value = _text(fld.get("value"))
        for part, text, limit in (
            ("name", name, EMBED_FIELD_NAME_MAX),
            ("value", value, EMBED_FIELD_VALUE_MAX),
        ):
            if not text:
                errors.required(("embeds", i, "fields", j, part))
            elif len(text) > limit:
                errors.max_length(("embeds", i, "fields", j, part), limit)
        size += len(name) + len(value)
    return size


def _validate_components(components: Any, errors: FormErrors, *, components_v2: bool) -> None:
    if not isinstance(components, list):
        errors.add(("components",), "BASE_TYPE_ARRAY", "Must be an array.")
        return
    custom_ids: set[str] = set()
    if not components_v2 and len(components) > ACTION_ROWS_MAX:
        errors.max_length(("components",), ACTION_ROWS_MAX)
    for i, row in enumerate(components):
        if not isinstance(row, dict):
            errors.add(("components", i), "MODEL_TYPE_CONVERT", "Only dictionaries may be used.")
            continue
        if components_v2:
            _collect_custom_ids(row, ("components", i), custom_ids, errors)
            continue
        if row.get("type") != _ACTION_ROW:
            errors.add(
                ("components", i, "type"),
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1,).',
            )
            continue
        children = row.get("components") or []
        if len(children) > ACTION_ROW_BUTTONS_MAX:
            errors.max_length(("components", i, "components"), ACTION_ROW_BUTTONS_MAX)
        for j, child in enumerate(children):
            path = ("components", i, "components", j)
            if child.get("type") == _BUTTON:
                _validate_button(child, path, errors)
            _collect_custom_ids(child, path, custom_ids, errors)


def _validate_button(
    button: dict[str, Any], path: tuple[str | int, ...], errors: FormErrors
) -> None:
    label = _text(button.get("label"))
    if len(label) > BUTTON_LABEL_MAX:
        errors.max_length((*path, "label"), BUTTON_LABEL_MAX)
    if not label and not button.get("emoji"):
        errors.add(path, "BUTTON_COMPONENT_LABEL_OR_EMOJI", "A label or emoji is required.")
    if button.get("style") == _LINK_STYLE:
        if not button.get("url"):
            errors.required((*path, "url"))
        if button.get("custom_id"):
            errors.add(
                (*path, "custom_id"),
                "BUTTON_COMPONENT_CUSTOM_ID_INVALID",
                "A custom id cannot be used with a link button.",
            )
    elif not button.get("custom_id") and not button.get("sku_id"):
        errors.required((*path, "custom_id"))


def _collect_custom_ids(
    component: dict[str, Any],
    path: tuple[str | int, ...],
    seen: set[str],
    errors: FormErrors,
) -> None:
    custom_id = component.get("custom_id")
    if isinstance(custom_id, str):
        if len(custom_id) > CUSTOM_ID_MAX:
            errors.max_length((*path, "custom_id"), CUSTOM_ID_MAX)
        if custom_id in seen:
            errors.add(
                (*path, "custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.add(custom_id)
    for k, child in enumerate(component.get("components") or []):
        if isinstance(child, dict):
            _collect_custom_ids(child, (*path, "components", k), seen, errors)
    accessory = component.get("accessory")
    if isinstance(accessory, dict):
        _collect_custom_ids(accessory, (*path, "accessory"), seen, errors)


def _validate_allowed_mentions(allowed: Any) -> None:
    if not isinstance(allowed, dict):
        return
    parse = set(allowed.get("parse") or [])
    for kind in ("users", "roles"):
        if kind in parse and allowed.get(kind):
            raise bad_request(
                f'allowed_mentions: parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.'
            )
