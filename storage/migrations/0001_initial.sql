-- 0001: initial schema — guild settings, credentials, accounts, the broker mirror
-- (positions, orders, transactions, balances), sync bookkeeping and idempotency keys.
--
-- Conventions: STRICT tables; money and quantities are Decimal TEXT (never REAL);
-- timestamps are fixed-width ISO-8601 UTC TEXT, so text order is time order; broker ids
-- are the unique keys every upsert is keyed on; environment is paper|sandbox|live.

CREATE TABLE guild_settings (
    guild_id                INTEGER PRIMARY KEY,
    environment             TEXT NOT NULL CHECK (environment IN ('paper', 'sandbox', 'live')),
    allowed_channel_ids     TEXT NOT NULL DEFAULT '[]',   -- JSON array of channel ids
    role_tiers              TEXT NOT NULL DEFAULT '{}',   -- JSON {"<role id>": "viewer|trader|admin"}
    max_quantity            TEXT,
    max_notional            TEXT,
    max_loss                TEXT,
    notification_channel_id INTEGER,
    halted                  INTEGER NOT NULL DEFAULT 0 CHECK (halted IN (0, 1)),
    skip_confirmation       INTEGER NOT NULL DEFAULT 0 CHECK (skip_confirmation IN (0, 1)),
    default_account_paper   TEXT,
    default_account_sandbox TEXT,
    default_account_live    TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    CHECK (NOT (skip_confirmation = 1 AND environment = 'live'))
) STRICT;

CREATE TABLE credentials (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL DEFAULT 0,           -- 0: the guild-wide credential
    environment     TEXT NOT NULL CHECK (environment IN ('paper', 'sandbox', 'live')),
    provider_secret TEXT NOT NULL,                        -- v1:<key id>:<AES-GCM payload>
    refresh_token   TEXT NOT NULL,                        -- v1:<key id>:<AES-GCM payload>
    key_id          TEXT NOT NULL,
    needs_relink    INTEGER NOT NULL DEFAULT 0 CHECK (needs_relink IN (0, 1)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (guild_id, user_id, environment)
) STRICT;

CREATE TABLE accounts (
    environment    TEXT NOT NULL CHECK (environment IN ('paper', 'sandbox', 'live')),
    account_number TEXT NOT NULL,
    guild_id       INTEGER REFERENCES guild_settings (guild_id) ON DELETE SET NULL,
    nickname       TEXT,
    account_type   TEXT,
    margin_or_cash TEXT,
    needs_relink   INTEGER NOT NULL DEFAULT 0 CHECK (needs_relink IN (0, 1)),
    last_synced_at TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (environment, account_number)
) STRICT;
CREATE INDEX accounts_by_guild ON accounts (guild_id, environment);

-- Full snapshot per account: replaced wholesale on every sync.
CREATE TABLE positions (
    environment        TEXT NOT NULL,
    account_number     TEXT NOT NULL,
    symbol             TEXT NOT NULL,
    instrument_type    TEXT NOT NULL,
    underlying_symbol  TEXT NOT NULL,
    quantity           TEXT NOT NULL,                     -- magnitude; see quantity_direction
    quantity_direction TEXT NOT NULL CHECK (quantity_direction IN ('Long', 'Short', 'Zero')),
    average_open_price TEXT NOT NULL,
    close_price        TEXT,
    mark_price         TEXT,                              -- per unit, when known
    multiplier         TEXT NOT NULL,
    cost_effect        TEXT,
    realized_day_gain  TEXT,
    expires_at         TEXT,
    broker_updated_at  TEXT,
    snapshot_at        TEXT NOT NULL,
    -- Clustered in display order: the grouped query is one ordered range scan.
    PRIMARY KEY (environment, account_number, underlying_symbol, symbol),
    UNIQUE (environment, account_number, symbol),
    FOREIGN KEY (environment, account_number)
        REFERENCES accounts (environment, account_number) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE orders (
    environment                TEXT NOT NULL,
    order_id                   INTEGER NOT NULL,
    account_number             TEXT NOT NULL,
    status                     TEXT NOT NULL,
    order_type                 TEXT NOT NULL,
    time_in_force              TEXT NOT NULL,
    underlying_symbol          TEXT,
    underlying_instrument_type TEXT,
    size                       TEXT,
    price                      TEXT,                      -- magnitude; sign is price_effect
    price_effect               TEXT CHECK (price_effect IN ('Debit', 'Credit', 'None')),
    stop_trigger               TEXT,
    filled_quantity            TEXT NOT NULL DEFAULT '0',
    received_at                TEXT,
    terminal_at                TEXT,
    updated_at                 TEXT NOT NULL,
    replaces_order_id          INTEGER,
    replaced_by_order_id       INTEGER,
    external_identifier        TEXT,
    raw_json                   TEXT,
    synced_at                  TEXT NOT NULL,
    PRIMARY KEY (environment, order_id),
    FOREIGN KEY (environment, account_number)
        REFERENCES accounts (environment, account_number) ON DELETE CASCADE
) STRICT;
CREATE INDEX orders_by_account_status ON orders (environment, account_number, status);
CREATE INDEX orders_by_replaces ON orders (environment, replaces_order_id)
    WHERE replaces_order_id IS NOT NULL;
CREATE INDEX orders_by_replaced_by ON orders (environment, replaced_by_order_id)
    WHERE replaced_by_order_id IS NOT NULL;
CREATE INDEX orders_by_external_id ON orders (environment, external_identifier)
    WHERE external_identifier IS NOT NULL;

CREATE TABLE order_legs (
    environment        TEXT NOT NULL,
    order_id           INTEGER NOT NULL,
    leg_index          INTEGER NOT NULL,
    symbol             TEXT NOT NULL,
    instrument_type    TEXT NOT NULL,
    action             TEXT NOT NULL,
    quantity           TEXT,
    remaining_quantity TEXT,
    order_updated_at   TEXT NOT NULL,                     -- newest order version wins
    PRIMARY KEY (environment, order_id, leg_index),
    FOREIGN KEY (environment, order_id)
        REFERENCES orders (environment, order_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE order_fills (
    environment       TEXT NOT NULL,
    fill_id           TEXT NOT NULL,
    order_id          INTEGER NOT NULL,
    leg_index         INTEGER NOT NULL,
    quantity          TEXT NOT NULL,
    fill_price        TEXT NOT NULL,
    filled_at         TEXT NOT NULL,
    destination_venue TEXT,
    PRIMARY KEY (environment, fill_id),
    FOREIGN KEY (environment, order_id)
        REFERENCES orders (environment, order_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX order_fills_by_order ON order_fills (environment, order_id, leg_index);

-- One row per snapshot; the latest is the current balance.
CREATE TABLE balance_snapshots (
    id                       INTEGER PRIMARY KEY,
    environment              TEXT NOT NULL,
    account_number           TEXT NOT NULL,
    net_liquidating_value    TEXT NOT NULL,
    cash_balance             TEXT NOT NULL,
    equity_buying_power      TEXT NOT NULL,
    derivative_buying_power  TEXT NOT NULL,
    day_trading_buying_power TEXT,
    maintenance_requirement  TEXT,
    pending_cash             TEXT,
    broker_updated_at        TEXT,
    taken_at                 TEXT NOT NULL,
    FOREIGN KEY (environment, account_number)
        REFERENCES accounts (environment, account_number) ON DELETE CASCADE
) STRICT;
CREATE INDEX balance_snapshots_latest
    ON balance_snapshots (environment, account_number, taken_at, id);

-- value, net_value and fees are signed as the SDK models them (debit < 0).
CREATE TABLE transactions (
    environment          TEXT NOT NULL,
    transaction_id       INTEGER NOT NULL,
    account_number       TEXT NOT NULL,
    transaction_type     TEXT NOT NULL,
    transaction_sub_type TEXT NOT NULL,
    description          TEXT NOT NULL,
    executed_at          TEXT NOT NULL,
    transaction_date     TEXT NOT NULL,
    value                TEXT NOT NULL,
    net_value            TEXT NOT NULL,
    fees                 TEXT NOT NULL,
    is_estimated_fee     INTEGER NOT NULL DEFAULT 0 CHECK (is_estimated_fee IN (0, 1)),
    symbol               TEXT,
    instrument_type      TEXT,
    underlying_symbol    TEXT,
    action               TEXT,
    quantity             TEXT,
    price                TEXT,
    order_id             INTEGER,
    PRIMARY KEY (environment, transaction_id),
    FOREIGN KEY (environment, account_number)
        REFERENCES accounts (environment, account_number) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;  -- clustered on the broker id: one b-tree less per insert
CREATE INDEX transactions_recent
    ON transactions (environment, account_number, executed_at, transaction_id);
CREATE INDEX transactions_by_order ON transactions (environment, order_id)
    WHERE order_id IS NOT NULL;

CREATE TABLE sync_runs (
    id              INTEGER PRIMARY KEY,
    environment     TEXT NOT NULL CHECK (environment IN ('paper', 'sandbox', 'live')),
    account_number  TEXT,                                 -- NULL: every account
    kind            TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),
    status          TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    pages_done      INTEGER NOT NULL DEFAULT 0,
    rows_written    INTEGER NOT NULL DEFAULT 0,
    estimated_total INTEGER,
    error_category  TEXT,
    error_message   TEXT,
    started_at      TEXT NOT NULL,
    finished_at     TEXT
) STRICT;
CREATE INDEX sync_runs_recent ON sync_runs (environment, account_number, started_at);

CREATE TABLE sync_watermarks (
    environment                  TEXT NOT NULL,
    account_number               TEXT NOT NULL,
    last_transaction_executed_at TEXT,
    last_transaction_id          INTEGER,
    last_order_updated_at        TEXT,
    updated_at                   TEXT NOT NULL,
    PRIMARY KEY (environment, account_number),
    FOREIGN KEY (environment, account_number)
        REFERENCES accounts (environment, account_number) ON DELETE CASCADE
) STRICT;

CREATE TABLE idempotency_keys (
    key            TEXT PRIMARY KEY,
    guild_id       INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    command_hash   TEXT NOT NULL,                          -- sha256 of the command text
    status         TEXT NOT NULL
        CHECK (status IN ('pending', 'submitted', 'placed', 'not_placed', 'failed')),
    environment    TEXT,
    account_number TEXT,
    order_id       INTEGER,
    detail         TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;
CREATE INDEX idempotency_unresolved ON idempotency_keys (created_at)
    WHERE status IN ('pending', 'submitted');
