"""After a run with every demo card, neither the database nor the logs hold a clear PAN, a track 2 or a
PIN block — in ASCII or in BCD."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from posgate.bootstrap.stack import Running
from posgate.fixtures.document import read_demo_fixture
from posgate.security.pin import encode_pin_block
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


async def test_the_stored_batch_upload_answer_holds_no_clear_pan(
    stack: Running, terminal: TerminalClient
) -> None:
    """Finding 4 of issue 9: the 0330 echoes field 48, whose records hold full PANs, and that answer was
    stored as is (`transactions.response_fields`). The answer sent still echoes it (pos-8583.md); the
    stored one does not, and a repeated 0320 still gets the echo."""
    card = demo_card("6229990000000012")
    for amount in (101, 102, 103):
        assert (await terminal.sale(card, "123456", amount)).approved
    terminal.state.journal.pop(0)  # the terminal's totals now differ: it uploads its records
    sent: list[dict[str, str]] = []
    exchange = terminal.exchange

    async def recording(msg: dict[str, str]):  # type: ignore[no-untyped-def]
        sent.append(dict(msg))
        return await exchange(msg)

    terminal.exchange = recording  # type: ignore[method-assign]
    settled = await terminal.settle()
    terminal.exchange = exchange  # type: ignore[method-assign]
    assert settled.settled and not settled.balanced and settled.uploaded == 2
    upload = next(r for r in settled.responses if r.mti == "0330" and "48" in r.fields)
    assert card.pan in upload.fields["48"]  # the spec's echo, on the wire
    database = _database_bytes(stack)
    assert b"622999******0012" in database
    for pattern in (card.pan.encode(), bytes.fromhex(card.pan), card.pan.encode("utf-16-le")):
        assert pattern not in database, "a clear PAN is stored"
    first_upload = next(m for m in sent if m["t"] == "0320" and card.pan in m["48"])  # records, not 207
    repeat = await terminal.exchange(dict(first_upload))
    assert repeat.response_code == "00" and repeat.fields["48"] == first_upload["48"]
