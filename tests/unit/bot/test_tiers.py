import pytest

from bot.tiers import COMMAND_TIERS, Tier, required_tier, resolve_tier


def test_tiers_are_ordered() -> None:
    assert Tier.NONE < Tier.VIEWER < Tier.TRADER < Tier.ADMIN


@pytest.mark.parametrize(
    ("command", "tier"),
    [
        ("status", Tier.VIEWER),
        ("positions", Tier.VIEWER),
        ("orders", Tier.VIEWER),
        ("balance", Tier.VIEWER),
        ("history", Tier.VIEWER),
        ("quote", Tier.VIEWER),
        ("buy", Tier.TRADER),
        ("stc", Tier.TRADER),
        ("close", Tier.TRADER),
        ("cancel", Tier.TRADER),
        ("replace", Tier.TRADER),
        ("sync", Tier.TRADER),
        ("env", Tier.ADMIN),
        ("sandbox", Tier.ADMIN),
        ("halt", Tier.ADMIN),
        ("resume", Tier.ADMIN),
        ("link", Tier.ADMIN),
        ("channels add", Tier.ADMIN),
        ("roles remove", Tier.ADMIN),
        ("limits set", Tier.ADMIN),
    ],
)
def test_required_tier_per_command(command: str, tier: Tier) -> None:
    assert required_tier(command) is tier


def test_unknown_command_has_no_tier_so_it_is_refused() -> None:
    assert required_tier("withdraw") is None


def test_highest_role_wins() -> None:
    tiers = {10: Tier.VIEWER, 20: Tier.TRADER}
    assert resolve_tier(role_ids=[10, 20], role_tiers=tiers, manage_guild=False) is Tier.TRADER
    assert resolve_tier(role_ids=[10], role_tiers=tiers, manage_guild=False) is Tier.VIEWER
    assert resolve_tier(role_ids=[99], role_tiers=tiers, manage_guild=False) is Tier.NONE


def test_manage_server_is_admin_by_default() -> None:
    assert resolve_tier(role_ids=[], role_tiers={}, manage_guild=True) is Tier.ADMIN


def test_parse_tier_names() -> None:
    assert Tier.parse(" Trader ") is Tier.TRADER
    with pytest.raises(ValueError, match="viewer, trader or admin"):
        Tier.parse("owner")
    with pytest.raises(ValueError):
        Tier.parse("none")


def test_every_trading_command_needs_at_least_trader() -> None:
    for name in ("buy", "sell", "bto", "sto", "btc", "stc", "close", "cancel", "replace"):
        assert COMMAND_TIERS[name] >= Tier.TRADER
