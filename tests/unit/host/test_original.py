"""FindOriginal: the rules of the transaction set's `OriginalRule`, over an in-memory repository."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from posgate.host.steps.card import ReadCard
from posgate.host.steps.original import FindOriginal
from posgate.store.originals import OriginalRecord
from tests.unit.host.fakes import PAN, FakeCards, FakeTransactions, context, sale


def sale_original(**overrides: object) -> OriginalRecord:
    record = OriginalRecord(
        id=42, mti="0200", kind="sale", state="approved", tid="10000001", mid="898440153110001",
        batch_no="000001", stan="000007", amount_fen=1_234, refunded_fen=0,
        pan_hash=FakeCards().pan_hash(PAN), issuer_name="Bank A", auth_code="A1B2C3",
        transmission_dt="1203023000", settled=False, business_date=dt.date(2026, 12, 3),
    )  # fmt: skip
    return replace(record, **overrides)  # type: ignore[arg-type]


def void(**fields: str) -> dict[str, str]:
    fields = {"3": "200000", "37": "000000000042", "61": "000001000007", "60": "2300000100060"} | fields
    return sale(**fields)


async def _find(record: OriginalRecord, request: dict[str, str]) -> str | None:
    ctx = context(request)
    await ReadCard().prepare(ctx)
    await FindOriginal(FakeTransactions(originals={"000000000042": record}), FakeCards()).prepare(ctx)
    return ctx.result.code if ctx.result.reason else None


async def test_a_void_of_its_sale() -> None:
    assert await _find(sale_original(), void()) is None


async def test_a_void_refused() -> None:
    assert await _find(sale_original(), void(**{"37": "000000000043"})) == "25"  # no such RRN
    assert await _find(sale_original(kind="preauth"), void()) == "25"  # not a sale
    assert await _find(sale_original(tid="10000002"), void()) == "25"  # another terminal's
    assert await _find(sale_original(state="voided"), void()) == "12"
    assert await _find(sale_original(settled=True), void()) == "12"  # its batch is closed
    assert await _find(sale_original(refunded_fen=1), void()) == "12"  # partly refunded
    assert await _find(sale_original(), void(**{"4": "000000001233"})) == "64"
    assert await _find(sale_original(pan_hash="other"), void()) == "12"  # another card


async def test_a_refund_may_take_what_is_left() -> None:
    refund = sale(**{"t": "0220", "3": "200000", "37": "000000000042", "61": "0000010000071203"})
    assert await _find(sale_original(tid="10000002"), refund) is None  # any terminal of the merchant
    assert await _find(sale_original(refunded_fen=1_000), refund) == "64"


async def test_a_completion_within_115_percent_with_its_auth_code() -> None:
    preauth = sale_original(kind="preauth", mti="0100")
    completion = {"25": "06", "37": "000000000042", "38": "A1B2C3", "61": "0000010000071203"}
    completion |= {"60": "2000000100060"}
    assert await _find(preauth, sale(**completion, **{"4": "000000001419"})) is None
    assert await _find(preauth, sale(**completion, **{"4": "000000001420"})) == "64"
    assert await _find(preauth, sale(**(completion | {"38": "ZZZZZZ"}))) == "25"
