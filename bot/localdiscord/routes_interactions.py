"""REST routes for interaction callbacks, follow-ups and the interaction webhook messages.

Enforces what real Discord enforces and a bot most easily gets wrong: one acknowledgement per
interaction, within the deadline (3 s); follow-ups only after an acknowledgement; component
callback types (6, 7) only for component interactions; tokens valid for 15 minutes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bot.localdiscord import errors
from bot.localdiscord.errors import DiscordApiError
from bot.localdiscord.limits import validate_message
from bot.localdiscord.records import (
    EPHEMERAL_FLAG,
    JSON,
    LOADING_FLAG,
    CallbackRecord,
    InteractionRecord,
    MessageRecord,
)
from bot.localdiscord.rest import Reply, RestApi, RestRequest
from bot.localdiscord.state import DiscordState

CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9
CALLBACK_TYPES = {4, 5, 6, 7, 8, 9}

INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4

TOKEN_LIFETIME_SECONDS = 15 * 60


class InteractionRoutes:
    def __init__(self, state: DiscordState, *, deadline: float | None) -> None:
        self._state = state
        self._world = state.world
        self._deadline = deadline

    def register(self, api: RestApi) -> None:
        r = api.route
        # Interaction and webhook-token routes are authorised by their token, not the bot's.
        r("POST", "/interactions/{interaction_id}/{token}/callback", self.callback, bot_auth=False)
        r("POST", "/webhooks/{app_id}/{token}", self.followup, bot_auth=False)
        message = "/webhooks/{app_id}/{token}/messages/{message_id}"
        r("GET", message, self.get_message, bot_auth=False)
        r("PATCH", message, self.edit_message, bot_auth=False)
        r("DELETE", message, self.delete_message, bot_auth=False)

    # -- callback -------------------------------------------------------------------------

    async def callback(self, req: RestRequest) -> Reply:
        interaction = self._state.interaction_by_id(req.int_param("interaction_id"))
        if interaction is None or interaction.token != req.params["token"]:
            raise errors.unknown_interaction()
        age = time.monotonic() - interaction.created_monotonic
        if self._deadline is not None and age > self._deadline:
            interaction.rejected.append(f"callback after {age:.2f}s (deadline {self._deadline}s)")
            raise errors.unknown_interaction()
        if interaction.callbacks:
            interaction.rejected.append("second acknowledgement")
            raise errors.already_acknowledged()
        body = req.json_object()
        callback_type = int(body.get("type") or 0)
        data: JSON = body.get("data") or {}
        self._check_type(interaction, callback_type)
        message = await self._apply(interaction, callback_type, data, req)
        interaction.callbacks.append(CallbackRecord(callback_type, data, datetime.now(UTC)))
        interaction.responded.set()
        if req.query.get("with_response", "").lower() not in ("1", "true"):
            return None
        response: JSON = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": callback_type == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message and message.ephemeral),
            }
        }
        if message is not None:
            response["interaction"]["response_message_id"] = str(message.id)
            response["resource"] = {"type": callback_type, "message": self._state.payload(message)}
        return response

    @staticmethod
    def _check_type(interaction: InteractionRecord, callback_type: int) -> None:
        if callback_type not in CALLBACK_TYPES:
            raise DiscordApiError(
                400,
                50035,
                "Invalid Form Body",
                errors={
                    "type": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_CHOICES",
                                "message": f"Value must be one of {sorted(CALLBACK_TYPES)}.",
                            }
                        ]
                    }
                },
            )
        component_only = callback_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
        if component_only and interaction.type != INTERACTION_COMPONENT:
            raise DiscordApiError(
                400, 40004, "Interaction callback type is only valid for components"
            )
        if (callback_type == AUTOCOMPLETE_RESULT) != (interaction.type == INTERACTION_AUTOCOMPLETE):
            raise DiscordApiError(
                400, 50035, "Invalid interaction callback type for this interaction"
            )

    async def _apply(
        self,
        interaction: InteractionRecord,
        callback_type: int,
        data: JSON,
        req: RestRequest,
    ) -> MessageRecord | None:
        if callback_type == CHANNEL_MESSAGE_WITH_SOURCE:
            validate_message(data, creating=True, has_files=bool(req.files))
            message = self._state.new_message(
                data,
                channel=interaction.channel,
                author=self._world.bot,
                files=req.files,
                ephemeral_to=interaction.user if _ephemeral(data) else None,
                interaction_id=interaction.id,
            )
            interaction.original = message
            await self._state.publish_create(message)
            return message
        if callback_type == DEFERRED_CHANNEL_MESSAGE:
            message = self._state.new_message(
                {"flags": EPHEMERAL_FLAG if _ephemeral(data) else 0},
                channel=interaction.channel,
                author=self._world.bot,
                ephemeral_to=interaction.user if _ephemeral(data) else None,
                interaction_id=interaction.id,
                extra_flags=LOADING_FLAG,
            )
            interaction.original = message
            await self._state.publish_create(message)
            return message
        if callback_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            target = interaction.message
            if target is None or target.deleted:
                raise errors.unknown_message()
            interaction.original = target
            if callback_type == UPDATE_MESSAGE:
                validate_message(data, creating=False, has_files=bool(req.files))
                self._state.apply_edit(target, data, req.files)
                await self._state.publish_edit(target)
            return target
        return None  # autocomplete choices and modals are recorded only

    # -- follow-ups and webhook messages --------------------------------------------------

    def _interaction(self, req: RestRequest) -> InteractionRecord:
        interaction = self._state.interaction_by_token(req.params["token"])
        if interaction is None or req.int_param("app_id") != self._world.application_id:
            raise errors.unknown_webhook()
        if time.monotonic() - interaction.created_monotonic > TOKEN_LIFETIME_SECONDS:
            raise DiscordApiError(401, 50027, "Invalid Webhook Token")
        return interaction

    async def followup(self, req: RestRequest) -> Reply:
        interaction = self._interaction(req)
        if not interaction.callbacks:
            raise errors.unknown_webhook()  # a follow-up needs an acknowledged interaction
        body = req.json_object()
        validate_message(body, creating=True, has_files=bool(req.files))
        original = interaction.original
        if original is not None and original.loading and original.interaction_id == interaction.id:
            # The first follow-up after a deferral replaces the "thinking…" message.
            await self._complete(original, body, req)
            message = original
        else:
            message = self._state.new_message(
                body,
                channel=interaction.channel,
                author=self._world.bot,
                files=req.files,
                ephemeral_to=interaction.user if _ephemeral(body) else None,
                interaction_id=interaction.id,
            )
            interaction.followups.append(message)
            await self._state.publish_create(message)
        if req.query.get("wait", "").lower() in ("1", "true"):
            return self._state.payload(message)
        return None

    def _target(self, req: RestRequest) -> tuple[InteractionRecord, MessageRecord]:
        interaction = self._interaction(req)
        if req.params["message_id"] == "@original":
            target = interaction.original
        else:
            wanted = req.int_param("message_id")
            target = next((m for m in interaction.replies if m.id == wanted), None)
        if target is None or target.deleted:
            raise errors.unknown_message()
        return interaction, target

    async def get_message(self, req: RestRequest) -> Reply:
        _, target = self._target(req)
        return self._state.payload(target)

    async def edit_message(self, req: RestRequest) -> Reply:
        _, target = self._target(req)
        body = req.json_object()
        validate_message(body, creating=False, has_files=bool(req.files))
        if target.loading:
            await self._complete(target, body, req)
        else:
            self._state.apply_edit(target, body, req.files)
            await self._state.publish_edit(target)
        return self._state.payload(target)

    async def _complete(self, loading: MessageRecord, body: JSON, req: RestRequest) -> None:
        """Replace a deferred "thinking…" message with the real response (not an edit)."""
        self._state.apply_edit(loading, body, req.files)
        loading.flags &= ~LOADING_FLAG
        loading.history.clear()
        loading.edited_at = None
        await self._state.publish_edit(loading)

    async def delete_message(self, req: RestRequest) -> Reply:
        _, target = self._target(req)
        await self._state.publish_delete(target)
        return None


def _ephemeral(data: JSON) -> bool:
    return bool(int(data.get("flags") or 0) & EPHEMERAL_FLAG)
