"""Guild settings: defaults, the never-live rule, validated partial updates."""

from decimal import Decimal

import pytest

from storage import Database, InvalidValueError, NotFoundError, StorageError


async def test_new_guild_gets_defaults(db: Database) -> None:
    settings = await db.guilds.get_or_create(7, "sandbox")
    assert settings.environment == "sandbox"
    assert settings.halted is False and settings.skip_confirmation is False
    assert settings.allowed_channel_ids == frozenset() and settings.role_tiers == {}
    assert (settings.chase_interval_seconds, settings.chase_ticks, settings.chase_max_steps) == (
        20.0,
        2,
        3,
    )
    assert settings.created_at is not None and settings.created_at.tzinfo is not None


async def test_a_new_guild_never_starts_live(db: Database) -> None:
    with pytest.raises(InvalidValueError, match="never starts in live"):
        await db.guilds.get_or_create(7, "live")
    with pytest.raises(InvalidValueError, match="never starts in live"):
        await db.guilds.create_default(7, "live")
    assert await db.guilds.get(7) is None


async def test_get_or_create_keeps_existing_settings(db: Database) -> None:
    await db.guilds.get_or_create(7, "paper")
    await db.guilds.update(7, environment="live")
    again = await db.guilds.get_or_create(7, "paper")
    assert again.environment == "live"


async def test_update_changes_only_given_fields(db: Database) -> None:
    await db.guilds.get_or_create(7, "paper")
    updated = await db.guilds.update(
        7,
        allowed_channel_ids={11, 12},
        role_tiers={100: "trader", 200: "admin"},
        max_quantity=Decimal("10"),
        max_notional=Decimal("5000.00"),
        max_loss=Decimal("250.50"),
        notification_channel_id=13,
        default_account_paper="5WT00001",
        chase_interval_seconds=0.5,
        chase_ticks=3,
        chase_max_steps=5,
    )
    assert updated.allowed_channel_ids == frozenset({11, 12})
    assert updated.role_tiers == {100: "trader", 200: "admin"}
    assert str(updated.max_notional) == "5000.00" and str(updated.max_loss) == "250.50"
    assert updated.default_account("paper") == "5WT00001"
    assert updated.default_account("live") is None
    assert updated.channel_allowed(11) and not updated.channel_allowed(99)
    halted = await db.guilds.update(7, halted=True)
    assert halted.halted and halted.role_tiers == updated.role_tiers
    cleared = await db.guilds.update(7, max_loss=None)
    assert cleared.max_loss is None and cleared.max_notional == Decimal("5000.00")


async def test_confirmation_skip_is_paper_and_sandbox_only(db: Database) -> None:
    await db.guilds.get_or_create(7, "sandbox")
    await db.guilds.update(7, skip_confirmation=True)
    with pytest.raises(InvalidValueError, match="turn it off before switching to live"):
        await db.guilds.update(7, environment="live")
    assert (await db.guilds.require(7)).environment == "sandbox"
    await db.guilds.update(7, skip_confirmation=False, environment="live")
    with pytest.raises(InvalidValueError, match="only allowed in paper or sandbox"):
        await db.guilds.update(7, skip_confirmation=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"chase_ticks": 4}, "1, 2 or 3"),
        ({"chase_ticks": 0}, "1, 2 or 3"),
        ({"chase_max_steps": 11}, "between 0 and 10"),
        ({"chase_interval_seconds": 0.0}, "positive"),
        ({"max_notional": Decimal("-1")}, "non-negative"),
        ({"role_tiers": {1: "owner"}}, "unknown tier 'owner'"),
        ({"environment": "prod"}, "unknown environment"),
    ],
)
async def test_invalid_updates_are_refused(
    db: Database, changes: dict[str, object], message: str
) -> None:
    await db.guilds.get_or_create(7, "paper")
    with pytest.raises(InvalidValueError, match=message):
        await db.guilds.update(7, **changes)  # type: ignore[arg-type]


async def test_update_of_unknown_guild(db: Database) -> None:
    with pytest.raises(NotFoundError, match="guild 99"):
        await db.guilds.update(99, halted=True)


async def test_database_constraint_backs_the_live_rule(db: Database) -> None:
    await db.guilds.get_or_create(7, "paper")
    with pytest.raises(StorageError, match="CHECK"):
        await db.execute(
            "UPDATE guild_settings SET skip_confirmation = 1, environment = 'live' "
            "WHERE guild_id = 7"
        )
