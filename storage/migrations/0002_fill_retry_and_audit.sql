-- 0002: fill-retry ("chase") state, fill notifications and the audit log, plus per-guild
-- chase parameters. Existing guilds get the defaults below.

ALTER TABLE guild_settings
    ADD COLUMN chase_interval_seconds REAL NOT NULL DEFAULT 20.0
    CHECK (chase_interval_seconds > 0);
ALTER TABLE guild_settings
    ADD COLUMN chase_ticks INTEGER NOT NULL DEFAULT 2 CHECK (chase_ticks BETWEEN 1 AND 3);
ALTER TABLE guild_settings
    ADD COLUMN chase_max_steps INTEGER NOT NULL DEFAULT 3 CHECK (chase_max_steps BETWEEN 0 AND 10);

-- Every trading command, decision and broker response. Never holds secrets (the
-- repository scrubs secret-looking keys before writing).
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    recorded_at     TEXT NOT NULL,
    guild_id        INTEGER,
    user_id         INTEGER,
    environment     TEXT,
    command         TEXT,
    event           TEXT NOT NULL,
    idempotency_key TEXT,
    details         TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX audit_by_guild ON audit_log (guild_id, recorded_at);
CREATE INDEX audit_by_key ON audit_log (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Prices are magnitudes; price_effect carries the debit/credit sign.
CREATE TABLE chases (
    id                 INTEGER PRIMARY KEY,
    idempotency_key    TEXT NOT NULL UNIQUE,
    guild_id           INTEGER NOT NULL,
    channel_id         INTEGER NOT NULL,
    author_id          INTEGER NOT NULL,
    environment        TEXT NOT NULL CHECK (environment IN ('paper', 'sandbox', 'live')),
    account_number     TEXT NOT NULL,
    ticket_json        TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('working', 'filled', 'left_working',
                           'cancelled', 'not_placed', 'failed', 'halted')),
    current_order_id   INTEGER,
    steps_done         INTEGER NOT NULL DEFAULT 0 CHECK (steps_done >= 0),
    max_steps          INTEGER NOT NULL CHECK (max_steps BETWEEN 0 AND 10),
    ticks_per_step     INTEGER NOT NULL CHECK (ticks_per_step BETWEEN 1 AND 3),
    interval_seconds   REAL NOT NULL CHECK (interval_seconds > 0),
    price_effect       TEXT NOT NULL CHECK (price_effect IN ('Debit', 'Credit')),
    start_price        TEXT NOT NULL,
    last_price         TEXT NOT NULL,
    natural_price      TEXT,
    tick_schedule_json TEXT NOT NULL DEFAULT '[]',
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK (steps_done <= max_steps)
) STRICT;
CREATE INDEX chases_working ON chases (environment, account_number) WHERE status = 'working';

-- Every order of a chase's replace chain, in step order.
CREATE TABLE chase_orders (
    chase_id          INTEGER NOT NULL REFERENCES chases (id) ON DELETE CASCADE,
    order_id          INTEGER NOT NULL,
    replaces_order_id INTEGER,
    step              INTEGER NOT NULL CHECK (step >= 0),
    price             TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    PRIMARY KEY (chase_id, order_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX chase_orders_by_order ON chase_orders (order_id);

-- One row per fill notification; the dedupe key makes delivery exactly-once.
CREATE TABLE fill_events (
    dedupe_key   TEXT PRIMARY KEY,
    environment  TEXT,
    order_id     INTEGER,
    payload      TEXT NOT NULL,
    delivered    INTEGER NOT NULL DEFAULT 0 CHECK (delivered IN (0, 1)),
    created_at   TEXT NOT NULL,
    delivered_at TEXT
) STRICT;
CREATE INDEX fill_events_undelivered ON fill_events (created_at) WHERE delivered = 0;
