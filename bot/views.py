"""Interactive components: the author-only Confirm/Cancel view and embed pagination.

Both views answer strangers ephemerally, respond to their own clicks within Discord's
3-second deadline (the slow work runs after the response), and remove their buttons when
they time out. Custom ids follow `tt:confirm:<key>`, `tt:cancel:<key>` and `tt:page:<n>`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import discord

log = logging.getLogger(__name__)

ConfirmCallback = Callable[[discord.Interaction], Awaitable[None]]

NOT_YOURS = "This isn't yours: only the person who ran the command can use these buttons."


async def _deny(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(NOT_YOURS, ephemeral=True)


class ConfirmView(discord.ui.View):
    """Confirm/Cancel buttons that only the command's author may press.

    `on_confirm` / `on_cancel` receive the (not yet responded) interaction and must respond
    to it. The view stops after the first accepted click, so a double click cannot confirm
    twice; `on_timeout` calls `on_expire` (which normally edits the message to say so).
    """

    def __init__(
        self,
        *,
        author_id: int,
        key: str,
        on_confirm: ConfirmCallback,
        on_cancel: ConfirmCallback,
        on_expire: Callable[[], Awaitable[None]],
        timeout: float = 60.0,
        confirm_label: str = "Confirm",
        danger: bool = False,
    ) -> None:
        super().__init__(timeout=timeout)
        self.author_id = author_id
        self.key = key
        self.result: bool | None = None
        self._on_confirm = on_confirm
        self._on_cancel = on_cancel
        self._on_expire = on_expire
        confirm: discord.ui.Button[ConfirmView] = discord.ui.Button(
            label=confirm_label,
            style=discord.ButtonStyle.danger if danger else discord.ButtonStyle.success,
            custom_id=f"tt:confirm:{key}",
        )
        cancel: discord.ui.Button[ConfirmView] = discord.ui.Button(
            label="Cancel", style=discord.ButtonStyle.secondary, custom_id=f"tt:cancel:{key}"
        )
        confirm.callback = self._confirm_clicked  # type: ignore[method-assign]
        cancel.callback = self._cancel_clicked  # type: ignore[method-assign]
        self.add_item(confirm)
        self.add_item(cancel)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.author_id:
            return True
        await _deny(interaction)
        return False

    async def _confirm_clicked(self, interaction: discord.Interaction) -> None:
        if self.result is not None:  # a second click raced the first: ignore it
            await interaction.response.defer()
            return
        self.result = True
        self.stop()
        await self._on_confirm(interaction)

    async def _cancel_clicked(self, interaction: discord.Interaction) -> None:
        if self.result is not None:
            await interaction.response.defer()
            return
        self.result = False
        self.stop()
        await self._on_cancel(interaction)

    async def on_timeout(self) -> None:
        if self.result is None:
            self.result = False
            await self._on_expire()

    async def on_error(
        self,
        interaction: discord.Interaction,
        error: Exception,
        item: discord.ui.Item[ConfirmView],
    ) -> None:
        log.exception("confirm view callback failed", exc_info=error)
        await _reply_error(interaction, "Something went wrong handling that click; see the logs.")


class Paginator(discord.ui.View):
    """Prev/Next buttons over a list of embeds, usable only by the command's author."""

    def __init__(
        self, pages: Sequence[discord.Embed], *, author_id: int, timeout: float = 180.0
    ) -> None:
        super().__init__(timeout=timeout)
        self.pages = list(pages)
        self.author_id = author_id
        self.index = 0
        self.message: discord.Message | discord.InteractionMessage | None = None
        self._prev: discord.ui.Button[Paginator] = discord.ui.Button(
            label="Prev", style=discord.ButtonStyle.secondary
        )
        self._next: discord.ui.Button[Paginator] = discord.ui.Button(
            label="Next", style=discord.ButtonStyle.primary
        )
        self._prev.callback = self._go_prev  # type: ignore[method-assign]
        self._next.callback = self._go_next  # type: ignore[method-assign]
        self.add_item(self._prev)
        self.add_item(self._next)
        self._sync_buttons()

    @property
    def needed(self) -> bool:
        return len(self.pages) > 1

    def _sync_buttons(self) -> None:
        last = len(self.pages) - 1
        # Ids name the page each button leads to; at an edge the disabled button points at
        # the current page, which keeps the two ids distinct whenever there are 2+ pages.
        self._prev.custom_id = f"tt:page:{max(self.index - 1, 0)}"
        self._next.custom_id = f"tt:page:{min(self.index + 1, last)}"
        self._prev.disabled = self.index == 0
        self._next.disabled = self.index >= last

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.author_id:
            return True
        await _deny(interaction)
        return False

    async def _go_prev(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, self.index - 1)

    async def _go_next(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, self.index + 1)

    async def _show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self)

    async def on_timeout(self) -> None:
        if self.message is None:
            return
        try:
            await self.message.edit(view=None)
        except discord.HTTPException:
            log.debug("could not remove pagination buttons", exc_info=True)


async def _reply_error(interaction: discord.Interaction, text: str) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not report a view error to the user", exc_info=True)
