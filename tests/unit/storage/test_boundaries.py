"""`storage` stays independent: no discord, no tastytrade, no bot/broker/cogs imports."""

import ast
from pathlib import Path

import storage

FORBIDDEN = ("discord", "tastytrade", "bot", "broker", "cogs")


def test_storage_imports_only_allowed_packages() -> None:
    root = Path(storage.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}" for name in names if name.split(".")[0] in FORBIDDEN
            ]
    assert offenders == []
    assert len(list(root.rglob("*.py"))) > 10  # the walk really saw the package


def test_migrations_ship_with_the_package() -> None:
    files = sorted(p.name for p in (Path(storage.__file__).parent / "migrations").glob("*.sql"))
    assert files[:2] == ["0001_initial.sql", "0002_fill_retry_and_audit.sql"]
