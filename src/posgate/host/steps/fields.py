"""CheckFields: the message carries what its kind needs."""

from __future__ import annotations

from posgate.host.context import Kind, TxnContext
from posgate.host.steps.base import HostServices, Step
from posgate.iso8583.reasons import Reason

REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.SIGN_IN: ("11", "41", "60"),
    Kind.SIGN_OUT: ("11", "41", "60"),
    Kind.ECHO: ("11", "41", "60"),
    Kind.BALANCE: ("3", "11", "22", "25", "41", "42", "49", "60"),
    Kind.SALE: ("3", "4", "11", "22", "25", "41", "42", "49", "60"),
    Kind.VOID: ("3", "4", "11", "22", "25", "37", "41", "42", "49", "60", "61"),
    Kind.REFUND: ("3", "4", "11", "22", "25", "37", "41", "42", "49", "60", "61"),
    Kind.PREAUTH: ("3", "4", "11", "22", "25", "41", "42", "49", "60"),
    Kind.PREAUTH_VOID: ("3", "4", "11", "22", "25", "37", "38", "41", "42", "49", "60"),
    Kind.COMPLETION: ("3", "4", "11", "22", "25", "37", "38", "41", "42", "49", "60", "61"),
    Kind.COMPLETION_VOID: ("3", "4", "11", "22", "25", "37", "41", "42", "49", "60", "61"),
    Kind.REVERSAL: ("3", "11", "25", "39", "41", "42", "60"),
    Kind.SETTLEMENT: ("11", "41", "42", "48", "60"),
    Kind.BATCH_UPLOAD: ("11", "41", "42", "48", "60"),
}
CARD_KINDS = (
    Kind.BALANCE,
    Kind.SALE,
    Kind.VOID,
    Kind.REFUND,
    Kind.PREAUTH,
    Kind.PREAUTH_VOID,
    Kind.COMPLETION,
    Kind.COMPLETION_VOID,
)
SUPPORTED_CURRENCIES = ("156",)


class CheckFields(Step):
    """Needs: the decoded request. Declines: 30 (a required field missing; card data neither in 2 nor 35),
    13 (amount zero), 12 (currency other than CNY)."""

    def __init__(self, services: HostServices, kind: Kind) -> None:
        super().__init__(services)
        self.required = REQUIRED[kind]
        self.needs_card = kind in CARD_KINDS
        self.needs_amount = kind in CARD_KINDS and kind is not Kind.BALANCE

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        missing = [f for f in self.required if f not in request]
        if missing or (self.needs_card and "2" not in request and "35" not in request):
            ctx.notes["format"] = "missing field " + (",".join(missing) or "2/35")
            ctx.result.decline(Reason.FORMAT_ERROR)
        elif self.needs_amount and int(request["4"]) <= 0:
            ctx.result.decline(Reason.INVALID_AMOUNT)
        elif "49" in request and request["49"] not in SUPPORTED_CURRENCIES:
            ctx.result.decline(Reason.INVALID_TRANSACTION)
