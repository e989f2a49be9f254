"""`LocalDiscord`: a fake Discord (REST + gateway) on 127.0.0.1 plus the driver API.

Runs the real, unmodified discord.py client against loopback::

    async with LocalDiscord(standard_world()) as discord:
        discord.install()                       # point discord.py at this server
        bot = make_bot(guild_ready_timeout=0.01)
        task = asyncio.create_task(bot.start("fake-token"))
        await discord.wait_until_identified()
        await bot.wait_until_ready()
        await discord.say("trader", "#trading", "!tt ping")
        reply = await discord.wait_for_message(lambda m: "pong" in m.text)
        await bot.close(); await task
        discord.uninstall()

Used by the end-to-end tests and by the offline console (``python -m bot --console``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from types import TracebackType
from typing import Self

import discord.gateway
import discord.http
import yarl
from aiohttp import web

from bot.localdiscord.errors import DiscordApiError
from bot.localdiscord.gateway import PRIVILEGED_INTENTS, Gateway
from bot.localdiscord.interactions import (
    CommandCall,
    OptionValue,
    SlashCommandError,
    build_command,
    interaction_base,
)
from bot.localdiscord.limits import validate_message
from bot.localdiscord.payloads import ATTACHMENT_SIZE_LIMIT, member_payload
from bot.localdiscord.records import (
    JSON,
    InteractionRecord,
    MessageRecord,
    OutputEvent,
    RestCall,
)
from bot.localdiscord.render import render_message
from bot.localdiscord.rest import API_PREFIX, RestApi, UnhandledRequest
from bot.localdiscord.routes_core import CoreRoutes
from bot.localdiscord.routes_interactions import INTERACTION_APPLICATION_COMMAND, InteractionRoutes
from bot.localdiscord.state import DiscordState, OutputCallback
from bot.localdiscord.world import (
    ChannelKind,
    ChannelSpec,
    Permission,
    RoleSpec,
    UserSpec,
    World,
    standard_world,
)

UserRef = UserSpec | str | int
ChannelRef = ChannelSpec | str | int
MessagePredicate = Callable[[MessageRecord], bool]

INTERACTION_DEADLINE_SECONDS = 3.0
_COMPONENT_BUTTON = 2
_COMPONENT_SELECT = 3


class LocalDiscord:
    """A Discord stand-in on loopback; see the module docstring for the lifecycle.

    ``token``: the only bot token accepted (``None`` accepts any). ``interaction_deadline``:
    seconds a bot has to acknowledge an interaction (Discord's 3 s; ``None`` disables).
    ``privileged_intents``: the privileged intents "enabled in the developer portal"; asking
    for others closes the gateway with 4014 like Discord. ``echo_bot_messages``: send the bot
    its own messages over the gateway, as Discord does. ``click_settle``: how long a message
    must have been shown before the driver clicks it — a person needs a moment too, and it
    lets the bot finish registering the message's view after its send returns.
    """

    def __init__(
        self,
        world: World | None = None,
        *,
        token: str | None = None,
        interaction_deadline: float | None = INTERACTION_DEADLINE_SECONDS,
        privileged_intents: int = PRIVILEGED_INTENTS,
        heartbeat_interval: float = 41.25,
        echo_bot_messages: bool = True,
        click_settle: float = 0.05,
    ) -> None:
        self.world = world if world is not None else standard_world()
        self._token = token
        self.interaction_deadline = interaction_deadline
        self.click_settle = click_settle
        self.gateway = Gateway(
            self.world,
            url=lambda: self.gateway_url,
            token_ok=self._token_ok,
            allowed_privileged_intents=privileged_intents,
            heartbeat_interval_ms=int(heartbeat_interval * 1000),
        )
        self.state = DiscordState(self.world, self.gateway, echo_bot_messages=echo_bot_messages)
        self.rest = RestApi(token_ok=self._token_ok, attachment_size_limit=ATTACHMENT_SIZE_LIMIT)
        CoreRoutes(self.state, lambda: self.gateway_url).register(self.rest)
        InteractionRoutes(self.state, deadline=interaction_deadline).register(self.rest)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._saved_overrides: tuple[str, yarl.URL] | None = None
        self._action_mark = 0
        self._request_waiters: list[
            tuple[Callable[[RestCall], bool], asyncio.Future[RestCall]]
        ] = []
        self.rest.add_call_listener(self._on_rest_call)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.Server)
        self._port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.uninstall()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def install(self) -> None:
        """Point discord.py's REST base and default gateway at this server (until uninstall)."""
        if self._saved_overrides is None:
            self._saved_overrides = (
                discord.http.Route.BASE,
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
            )
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        # Safety net (not an assert, which -O strips): nothing may ever reach the real Discord.
        gateway = str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        if not discord.http.Route.BASE.startswith("http://127.0.0.1") or not gateway.startswith(
            "ws://127.0.0.1"
        ):
            self.uninstall()
            raise RuntimeError("LocalDiscord.install() must point discord.py at 127.0.0.1 only")

    def uninstall(self) -> None:
        if self._saved_overrides is not None:
            base, gateway = self._saved_overrides
            discord.http.Route.BASE = base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
            self._saved_overrides = None

    def _token_ok(self, token: str) -> bool:
        return self._token is None or secrets.compare_digest(token, self._token)

    async def wait_until_identified(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            await self.gateway.identified.wait()

    # -- captured output ------------------------------------------------------------------

    @property
    def messages(self) -> list[MessageRecord]:
        """Every message the bot sent (ephemeral ones included), in order; edits update them."""
        return [m for m in self.state.all_messages if m.author.id == self.world.bot.id]

    @property
    def all_messages(self) -> list[MessageRecord]:
        """Every message, from users and from the bot."""
        return list(self.state.all_messages)

    @property
    def interactions(self) -> list[InteractionRecord]:
        return list(self.state.interactions)

    @property
    def rest_log(self) -> list[RestCall]:
        return self.rest.rest_log

    @property
    def unhandled(self) -> list[UnhandledRequest]:
        """Requests no route knew (answered 404); tests assert this stays empty."""
        return self.rest.unhandled

    @property
    def server_errors(self) -> list[str]:
        """Internal failures of the stand-in itself (answered 500); should stay empty."""
        return self.rest.server_errors

    @property
    def synced_commands(self) -> list[JSON]:
        """The global command tree as last synced."""
        return self.state.global_commands

    def synced_guild_commands(self, guild: str | int | None = None) -> list[JSON]:
        target = self.world.guild(guild) if guild is not None else self.world.guilds[0]
        return self.state.guild_commands.get(target.id, [])

    @property
    def last_synced(self) -> list[JSON] | None:
        """The command list of the most recent sync (global or guild)."""
        return self.state.last_synced

    @property
    def typing_events(self) -> list[tuple[int, datetime]]:
        """(channel id, time) for every typing indicator the bot triggered."""
        return list(self.state.typing)

    def messages_in(self, channel: ChannelRef) -> list[MessageRecord]:
        spec = self.world.channel(channel)
        return [m for m in self.messages if m.channel.id == spec.id]

    def last_message(self, channel: ChannelRef | None = None) -> MessageRecord:
        candidates = self.messages if channel is None else self.messages_in(channel)
        if not candidates:
            raise LookupError(
                "the bot has not sent any message" + (f" in {channel}" if channel else "")
            )
        return candidates[-1]

    def dms_to(self, user: UserRef) -> list[MessageRecord]:
        spec = self.world.user(user)
        return [
            m for m in self.messages if m.dm_recipient is not None and m.dm_recipient.id == spec.id
        ]

    def on_output(
        self, callback: OutputCallback, *, include_user_messages: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(event)`` (sync or async) for each create/edit/delete, in order.

        Returns a function that unsubscribes.
        """
        self.state.add_listener(callback, include_user_messages=include_user_messages)
        return lambda: self.state.remove_listener(callback)

    async def output(self, *, include_user_messages: bool = False) -> AsyncIterator[OutputEvent]:
        """Async iterator over output events from now on (until the consumer stops)."""
        queue: asyncio.Queue[OutputEvent] = asyncio.Queue()
        unsubscribe = self.on_output(queue.put_nowait, include_user_messages=include_user_messages)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    @property
    def mark(self) -> int:
        """Position in the output event log; pass as ``since=`` to the wait helpers."""
        return len(self.state.events)

    async def wait_for_message(
        self,
        predicate: MessagePredicate | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        since: int | None = None,
    ) -> MessageRecord:
        """The first bot message sent since the last driver action (or ``since``) that
        matches ``predicate``; waits up to ``timeout`` seconds for it."""
        return await self._wait_event("create", predicate, timeout, since)

    async def wait_for_edit(
        self,
        predicate: MessagePredicate | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        since: int | None = None,
    ) -> MessageRecord:
        """The first bot message edited since the last driver action (or ``since``) whose
        edited state matches ``predicate``."""
        return await self._wait_event("edit", predicate, timeout, since)

    async def wait_for_delete(
        self,
        predicate: MessagePredicate | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        since: int | None = None,
    ) -> MessageRecord:
        return await self._wait_event("delete", predicate, timeout, since)

    async def _wait_event(
        self,
        kind: str,
        predicate: MessagePredicate | None,
        timeout: float,  # noqa: ASYNC109
        since: int | None,
    ) -> MessageRecord:
        index = self._action_mark if since is None else since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while index < len(self.state.events):
                        event = self.state.events[index]
                        index += 1
                        if (
                            event.kind == kind
                            and event.message.author.id == self.world.bot.id
                            and (predicate is None or predicate(event.message))
                        ):
                            return event.message
                    await self.state.next_event()
        except TimeoutError:
            raise TimeoutError(self._describe_miss(kind, timeout)) from None

    def _describe_miss(self, kind: str, timeout: float) -> str:
        recent = [
            f"  [{e.kind}] " + render_message(e.message).replace("\n", "\n    ")
            for e in self.state.events[self._action_mark :]
            if e.message.author.id == self.world.bot.id
        ]
        seen = "\n".join(recent[-5:]) or "  (no bot output since the last action)"
        return (
            f"no bot message {kind} matched within {timeout}s; "
            f"bot output since the last action:\n{seen}"
        )

    async def wait_for_request(
        self,
        predicate: Callable[[RestCall], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RestCall:
        """The next REST call matching ``predicate`` (calls already made do not count)."""
        future: asyncio.Future[RestCall] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._request_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            if entry in self._request_waiters:
                self._request_waiters.remove(entry)

    def _on_rest_call(self, call: RestCall) -> None:
        for predicate, future in list(self._request_waiters):
            if not future.done() and predicate(call):
                future.set_result(call)

    # -- fault injection --------------------------------------------------------------------

    def inject_rate_limit(
        self,
        method: str,
        path_glob: str,
        *,
        retry_after: float = 0.2,
        times: int = 1,
        is_global: bool = False,
        via: bool = True,
    ) -> None:
        """Next ``times`` requests matching (e.g. ``"POST", "/channels/*/messages"``) get 429."""
        self.rest.inject_rate_limit(
            method, path_glob, retry_after=retry_after, times=times, is_global=is_global, via=via
        )

    def inject_error(
        self,
        method: str,
        path_glob: str,
        status: int,
        *,
        code: int = 0,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Next ``times`` matching requests get a Discord error, e.g. 403 code 50013."""
        self.rest.inject_error(method, path_glob, status, code=code, message=message, times=times)

    async def reconnect_gateway(self) -> None:
        """Ask the bot to reconnect (op 7); it resumes and receives anything it missed."""
        await self.gateway.request_reconnect()

    # -- driver: messages -------------------------------------------------------------------

    def _begin_action(self) -> None:
        self._action_mark = len(self.state.events)

    def _content_visible(self, record: MessageRecord) -> bool:
        return (
            record.channel.kind is ChannelKind.DM
            or self.gateway.has_message_content_intent
            or f"user:{self.world.bot.id}" in record.pings
        )

    async def say(
        self,
        user: UserRef,
        channel: ChannelRef,
        content: str,
        *,
        reply_to: MessageRecord | None = None,
    ) -> MessageRecord:
        """``user`` posts ``content`` in ``channel`` ("#trading"); dispatches MESSAGE_CREATE.

        Content is blank for the bot unless it has the message-content intent, the message
        mentions it, or it is a DM — as on Discord.
        """
        author = self.world.user(user)
        spec = self.world.channel(channel)
        self._check_can_post(author, spec)
        body: JSON = {"content": content}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to.id)}
        try:
            validate_message(body, creating=True)
        except DiscordApiError as exc:
            raise ValueError(f"Discord would refuse this message: {exc.describe()}") from None
        record = self.state.new_message(body, channel=spec, author=author)
        self._begin_action()
        await self.state.publish_create(record, echo=False)
        record.dispatched_monotonic = await self._dispatch_message("MESSAGE_CREATE", record)
        return record

    async def say_dm(self, user: UserRef, content: str) -> MessageRecord:
        """``user`` sends the bot a direct message."""
        author = self.world.user(user)
        return await self.say(author, self.world.dm_channel(author), content)

    async def redeliver(self, message: MessageRecord) -> None:
        """Dispatch the same MESSAGE_CREATE again, as Discord may after a reconnect."""
        self._begin_action()
        await self._dispatch_message("MESSAGE_CREATE", message)

    async def edit(self, message: MessageRecord, new_content: str) -> MessageRecord:
        """The author edits their message; dispatches MESSAGE_UPDATE."""
        if message.author.id == self.world.bot.id:
            raise ValueError("the driver edits user messages; the bot edits its own over REST")
        self._begin_action()
        self.state.apply_edit(message, {"content": new_content}, [])
        await self.state.publish_edit(message, echo=False)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def delete(self, message: MessageRecord) -> None:
        """The author deletes their message; dispatches MESSAGE_DELETE."""
        self._begin_action()
        await self.state.publish_delete(message)

    async def _dispatch_message(self, event: str, record: MessageRecord) -> float | None:
        payload = self.state.payload(record, content_visible=self._content_visible(record))
        return await self.gateway.dispatch(event, payload)

    def _check_can_post(self, user: UserSpec, channel: ChannelSpec) -> None:
        guild = self.world.guild_of(channel)
        if guild is None:
            return
        if guild.member(user.id) is None:
            raise ValueError(f"{user.name!r} is not a member of {guild.name!r}")
        if not self.world.permissions_for(channel, user.id) & Permission.SEND_MESSAGES:
            raise ValueError(f"{user.name!r} cannot send messages in {channel.label}")

    async def set_roles(
        self, user: UserRef, roles: list[RoleSpec | str], guild: str | int | None = None
    ) -> None:
        """Replace a member's roles; dispatches GUILD_MEMBER_UPDATE when the bot may see it."""
        target = self.world.guild(guild) if guild is not None else self.world.guilds[0]
        spec = self.world.user(user)
        member = target.member(spec.id)
        if member is None:
            raise ValueError(f"{spec.name!r} is not a member of {target.name!r}")
        member.role_ids = [(r if isinstance(r, RoleSpec) else target.role(r)).id for r in roles]
        if self.gateway.has_members_intent:
            data = member_payload(member)
            data["guild_id"] = str(target.id)
            await self.gateway.dispatch("GUILD_MEMBER_UPDATE", data)

    # -- driver: interactions ---------------------------------------------------------------

    def find_button_message(
        self,
        user: UserRef,
        label_or_custom_id: str,
        *,
        channel: ChannelRef | None = None,
    ) -> MessageRecord:
        """The newest bot message ``user`` can see that has a matching button."""
        clicker = self.world.user(user)
        spec = self.world.channel(channel) if channel is not None else None
        for record in reversed(self.messages):
            if record.deleted or (spec is not None and record.channel.id != spec.id):
                continue
            if record.ephemeral_to is not None and record.ephemeral_to.id != clicker.id:
                continue
            if record.has_button(label_or_custom_id):
                return record
        where = f" in {spec.label}" if spec else ""
        raise LookupError(
            f"no bot message{where} visible to {clicker.name!r} has a button {label_or_custom_id!r}"
        )

    async def click(
        self,
        user: UserRef,
        label_or_custom_id: str,
        message: MessageRecord | None = None,
        *,
        channel: ChannelRef | None = None,
        wait: bool = True,
    ) -> InteractionRecord:
        """``user`` clicks a button (by label or custom_id) on ``message`` or on the newest bot
        message that has it; dispatches INTERACTION_CREATE type 3.

        With ``wait`` it returns once the bot acknowledged, or the deadline passed (then
        ``failed`` is set, like Discord's "This interaction failed").
        """
        clicker = self.world.user(user)
        target = message or self.find_button_message(clicker, label_or_custom_id, channel=channel)
        button = target.button(label_or_custom_id)
        if button.disabled:
            raise ValueError(f"button {label_or_custom_id!r} is disabled")
        if button.custom_id is None:
            raise ValueError(f"button {label_or_custom_id!r} is a link, not clickable by a bot")
        if target.ephemeral_to is not None and target.ephemeral_to.id != clicker.id:
            raise ValueError(f"{clicker.name!r} cannot see that ephemeral message")
        data = {"custom_id": button.custom_id, "component_type": _COMPONENT_BUTTON}
        return await self._component(clicker, target, data, wait=wait)

    async def select(
        self,
        user: UserRef,
        custom_id: str,
        values: list[str],
        message: MessageRecord | None = None,
        *,
        wait: bool = True,
    ) -> InteractionRecord:
        """``user`` picks ``values`` in the select menu ``custom_id``."""
        clicker = self.world.user(user)
        target = message
        if target is None:
            target = next(
                (
                    m
                    for m in reversed(self.messages)
                    if not m.deleted
                    and any(
                        c.get("custom_id") == custom_id
                        for row in m.components
                        for c in row.get("components") or []
                    )
                ),
                None,
            )
        if target is None:
            raise LookupError(f"no bot message has a select {custom_id!r}")
        data = {"custom_id": custom_id, "component_type": _COMPONENT_SELECT, "values": values}
        return await self._component(clicker, target, data, wait=wait)

    async def _component(
        self, user: UserSpec, target: MessageRecord, data: JSON, *, wait: bool
    ) -> InteractionRecord:
        shown_for = time.monotonic() - target.changed_monotonic
        if shown_for < self.click_settle:
            await asyncio.sleep(self.click_settle - shown_for)
        interaction_id = self.world.ids.next()
        token = f"itok-{secrets.token_urlsafe(24)}"
        payload = interaction_base(
            self.world,
            interaction_id=interaction_id,
            token=token,
            interaction_type=3,
            user=user,
            channel=target.channel,
        )
        payload["data"] = data
        payload["message"] = self.state.payload(target)
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=3,
            user=user,
            channel=target.channel,
            payload=payload,
            custom_id=str(data["custom_id"]),
            message=target,
        )
        return await self._send_interaction(record, wait=wait)

    async def slash(
        self,
        user: UserRef,
        channel: ChannelRef,
        command: str,
        subcommand: str | None = None,
        options: dict[str, OptionValue] | None = None,
        *,
        wait: bool = True,
    ) -> InteractionRecord:
        """``user`` runs ``/command subcommand option:value…`` in ``channel``.

        ``subcommand`` may name a group and a subcommand ("settings set"). Option types come
        from the synced command tree when the bot synced, else from the Python values
        (str 3, int 4, bool 5, float/Decimal 10, UserSpec 6, ChannelSpec 7, RoleSpec 8).
        Raises `SlashCommandError` for what the Discord client would not let a user send.
        """
        invoker = self.world.user(user)
        spec = self.world.channel(channel)
        guild = self.world.guild_of(spec)
        path = subcommand.split() if subcommand else []
        synced = self._synced_command(command, guild.id if guild else None)
        interaction_id = self.world.ids.next()
        call: CommandCall = build_command(
            self.world,
            guild,
            synced,
            command,
            path,
            dict(options or {}),
            int(synced["id"]) if synced else self.world.ids.next(),
        )
        token = f"itok-{secrets.token_urlsafe(24)}"
        payload = interaction_base(
            self.world,
            interaction_id=interaction_id,
            token=token,
            interaction_type=INTERACTION_APPLICATION_COMMAND,
            user=invoker,
            channel=spec,
        )
        payload["data"] = call.data
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=INTERACTION_APPLICATION_COMMAND,
            user=invoker,
            channel=spec,
            payload=payload,
            command=call.qualified_name,
            options=call.options,
        )
        return await self._send_interaction(record, wait=wait)

    def _synced_command(self, name: str, guild_id: int | None) -> JSON | None:
        scopes = []
        if guild_id is not None:
            scopes.append(self.state.guild_commands.get(guild_id, []))
        scopes.append(self.state.global_commands)
        for commands in scopes:
            for command in commands:
                if command.get("name") == name and int(command.get("type", 1)) == 1:
                    return command
        if any(scopes):
            raise SlashCommandError(f"/{name} is not among the synced commands")
        return None

    async def _send_interaction(
        self, record: InteractionRecord, *, wait: bool
    ) -> InteractionRecord:
        self._begin_action()
        record.created_monotonic = time.monotonic()
        self.state.add_interaction(record)
        record.dispatched_monotonic = await self.gateway.dispatch(
            "INTERACTION_CREATE", record.payload
        )
        if wait:
            limit = self.interaction_deadline or 10.0
            try:
                async with asyncio.timeout(limit):
                    await record.responded.wait()
            except TimeoutError:
                record.failed = True
        return record


__all__ = ["LocalDiscord", "SlashCommandError"]
