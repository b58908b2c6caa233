"""After a run with every demo card, neither the database nor the logs hold a clear PAN, a track 2 or a
PIN block — in ASCII or in BCD."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from posgate.fixtures.document import read_demo_fixture
from posgate.security.pin import encode_pin_block
from posgate.services import Running
from posgate.terminal import TerminalClient, demo_card


def _forbidden(terminal: TerminalClient) -> dict[str, list[bytes]]:
    """Every way a demo card's secrets could appear in bytes."""
    patterns: dict[str, list[bytes]] = {}
    for doc in read_demo_fixture().cards:
        card = demo_card(doc.pan)
        assert card.track2 is not None
        pin_block = encode_pin_block(doc.pin, doc.pan, terminal.state.pik)
        patterns[doc.pan] = [
            doc.pan.encode(),
            bytes.fromhex(doc.pan),  # BCD
            card.track2.encode(),
            card.track2.replace("D", "=").encode(),
            pin_block,
            pin_block.hex().upper().encode(),
            pin_block.hex().encode(),
        ]
    return patterns


async def _exercise_every_card(terminal: TerminalClient) -> None:
    for doc in read_demo_fixture().cards:
        card = demo_card(doc.pan)
        await terminal.balance(card, doc.pin)
        await terminal.sale(card, doc.pin, 100)
        await terminal.sale(card, "000000", 100)  # a wrong PIN too
    await terminal.reverse_last("98")


def _database_bytes(stack: Running) -> bytes:
    """SQLite: the database file and its WAL, byte for byte. PostgreSQL: every value of every table."""
    engine = stack.handle.store.engine
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    chunks = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    chunks.append(
                        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                    )
    return b"\x00".join(chunks)


async def test_no_clear_card_data_in_the_database_or_the_logs(
    stack: Running, terminal: TerminalClient
) -> None:
    await _exercise_every_card(terminal)
    database = _database_bytes(stack)
    assert b"622999******0012" in database  # we read the transactions: the masked form is there
    assert stack.host is not None
    logs = b"".join(p.read_bytes() for p in stack.host.services.settings.data_dir.glob("*.log"))
    assert b"tid=10000001" in logs  # the log was written
    for pan, patterns in _forbidden(terminal).items():
        for pattern in patterns:
            assert pattern not in database, f"card data of {pan[:6]}… found in the database"
            assert pattern not in logs, f"card data of {pan[:6]}… found in the logs"
