"""tt-bot storage: SQLite through aiosqlite, versioned migrations, typed repositories and
encryption at rest for credentials.

    from storage import Database, Keyring

    db = await Database.open("tt-bot.sqlite3", keyring=Keyring.from_environ())
    await db.guilds.get_or_create(guild_id, default_environment="paper")
    await db.orders.upsert_many(page)          # one transaction, one executemany per table
    groups = await db.positions.by_underlying("paper", "5WT00001")
    await db.close()

Design notes live in the module docstrings: `storage.database` (connection ownership,
locking, transactions), `storage.migrate`, `storage.crypto`, `storage.codec` (Decimal and
datetime encoding), and one module per repository. SQL lives only in this package; it
imports neither discord nor tastytrade (the broker maps SDK models to these records).
"""

from storage.accounts import Account
from storage.audit import AuditEntry
from storage.balances import BalanceSnapshot
from storage.chases import Chase, ChaseLink, NewChase
from storage.codec import ENVIRONMENTS, TIERS
from storage.credentials import CredentialStatus, StoredCredentials
from storage.crypto import KEYS_ENV_VAR, Keyring, Secret, generate_key_entry
from storage.database import ConnectionSettings, Database
from storage.errors import (
    DatabaseInUseError,
    DecryptionError,
    DuplicateError,
    EncryptionKeyMissingError,
    InvalidValueError,
    NotFoundError,
    StorageError,
)
from storage.fill_events import FillEvent, dedupe_key
from storage.guilds import UNSET, GuildSettings
from storage.idempotency import Claim, IdempotencyRecord
from storage.orders import Order, OrderFill, OrderLeg, split_signed_price
from storage.positions import Position, UnderlyingGroup
from storage.sync import SyncRun, SyncWatermark
from storage.transactions import Transaction, TransactionRow, transaction_row

__all__ = [
    "ENVIRONMENTS",
    "KEYS_ENV_VAR",
    "TIERS",
    "UNSET",
    "Account",
    "AuditEntry",
    "BalanceSnapshot",
    "Chase",
    "ChaseLink",
    "Claim",
    "ConnectionSettings",
    "CredentialStatus",
    "Database",
    "DatabaseInUseError",
    "DecryptionError",
    "DuplicateError",
    "EncryptionKeyMissingError",
    "FillEvent",
    "GuildSettings",
    "IdempotencyRecord",
    "InvalidValueError",
    "Keyring",
    "NewChase",
    "NotFoundError",
    "Order",
    "OrderFill",
    "OrderLeg",
    "Position",
    "Secret",
    "StorageError",
    "StoredCredentials",
    "SyncRun",
    "SyncWatermark",
    "Transaction",
    "TransactionRow",
    "UnderlyingGroup",
    "dedupe_key",
    "generate_key_entry",
    "split_signed_price",
    "transaction_row",
]
