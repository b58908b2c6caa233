"""The cards the terminal simulator reads: a swiped demo card (its track 2 as the issuer wrote it) or a
key-entered one.

`demo_card` computes what the demo fixture's issuer would have encoded on the stripe: the IBM 3624 PIN offset
of the card's PIN under the bank's PVK, the CVV under its CVK, then the demo track 2 layout
(`PAN D expiry service-code 1 offset CVV 00`, see shared/spec/demo-fixture.md). A chip card (service code
2xx) of a bank with an IMK-AC also gets its chip (`chip.ChipCard`: the ICC master key the issuer derived),
so the simulator can compute the card's ARQC. `manual_card` is a card typed in on the keypad: PAN and expiry
only, no track, no chip.

A `CardProfile`'s `repr()` shows the masked PAN only: never the track, the expiry, the PIN or chip keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from posgate.cards.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, mask_pan
from posgate.cards.track2 import build_demo_track2
from posgate.errors import ConfigError, EncodeError
from posgate.fixtures.document import DemoFixture, FixtureBank, FixtureCard, read_demo_fixture
from posgate.security.cvv import card_verification_value
from posgate.security.pin import pin_offset
from posgate.terminal.chip import ChipCard

#: The PIN typed for a key-entered card that is not in the demo fixture.
DEFAULT_MANUAL_PIN = "123456"
#: First digits of a service code that say "this card has a chip: read it first".
CHIP_SERVICE_CODES = ("2", "6")


@dataclass(frozen=True)
class CardProfile:
    """What the terminal reads from a card (and the PIN the simulated cardholder types by default).

    `track2` is the track as field 35 carries it (`D` separator), or None for a key-entered card;
    `service_code` is "" when unknown (key entry); `psn` is the chip's PAN sequence number, if any;
    `chip` is the card's chip when the simulator can stand in for it (its issuer's IMK-AC is known).
    """

    pan: str
    expiry: str
    service_code: str
    track2: str | None
    psn: str | None
    default_pin: str
    chip: ChipCard | None = None

    def __repr__(self) -> str:
        chip = ", chip=<set>" if self.chip is not None else ""
        return (
            f"CardProfile(pan={mask_pan(self.pan)!r}, service_code={self.service_code!r}, "
            f"psn={self.psn!r}, track2={'<set>' if self.track2 else None}{chip})"
        )

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)

    @property
    def is_chip(self) -> bool:
        """True for a chip card (service code starting with 2 or 6)."""
        return self.service_code[:1] in CHIP_SERVICE_CODES


@lru_cache(maxsize=1)
def _fixture() -> DemoFixture:
    return read_demo_fixture()


def demo_card(pan_or_profile: str) -> CardProfile:
    """The demo fixture's card with that PAN or profile name (e.g. `debit-ok`), as its stripe reads.

    Raises `ConfigError` for an unknown card.

    >>> card = demo_card("debit-ok")
    >>> card.track2 == "6229990000000012D3012101136169110300", card
    (True, CardProfile(pan='622999******0012', service_code='101', psn=None, track2=<set>))
    """
    fixture = _fixture()
    card = fixture.card(pan_or_profile)
    return card_profile(card, fixture.bank(card.bank))


def card_profile(card: FixtureCard, bank: FixtureBank) -> CardProfile:
    """The stripe (and chip) of a fixture-style card of `bank` (also used for generated bench cards).

    >>> chip = demo_card("credit-chip")
    >>> chip.is_chip, chip.chip
    (True, ChipCard(psn='01'))
    """
    offset = pin_offset(bytes.fromhex(bank.pvk), card.pin, card.pan)
    cvv = card_verification_value(bytes.fromhex(bank.cvk), card.pan, card.expiry, card.service_code)
    track2 = build_demo_track2(card.pan, card.expiry, card.service_code, offset, cvv)
    chip = None
    if card.service_code[:1] in CHIP_SERVICE_CODES and card.psn and bank.imk_ac:
        chip = ChipCard.from_issuer(bytes.fromhex(bank.imk_ac), card.pan, card.psn)
    return CardProfile(
        pan=card.pan,
        expiry=card.expiry,
        service_code=card.service_code,
        track2=track2,
        psn=card.psn,
        default_pin=card.pin,
        chip=chip,
    )


def manual_card(pan: str, expiry: str, default_pin: str | None = None) -> CardProfile:
    """A key-entered card (POS entry mode 01x: fields 2 and 14, no track).

    The PAN is not Luhn-checked (so the host's `14` can be tried). `default_pin` defaults to the demo
    fixture's PIN for that PAN, else `123456`. Raises `EncodeError` for a malformed PAN or expiry.

    >>> manual_card("6229990000000012", "3012")
    CardProfile(pan='622999******0012', service_code='', psn=None, track2=None)
    """
    if not (pan.isascii() and pan.isdigit() and PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS):
        raise EncodeError(f"PAN must be {PAN_MIN_DIGITS} to {PAN_MAX_DIGITS} digits", field=2)
    if not (expiry.isascii() and expiry.isdigit() and len(expiry) == 4):
        raise EncodeError("expiry must be 4 digits (YYMM)", field=14)
    if default_pin is None:
        try:
            default_pin = _fixture().card(pan).pin
        except ConfigError:
            default_pin = DEFAULT_MANUAL_PIN
    return CardProfile(
        pan=pan, expiry=expiry, service_code="", track2=None, psn=None, default_pin=default_pin
    )


def default_entry(card: CardProfile) -> str:
    """How the terminal reads a card when the caller does not say: the chip when the simulator can read it,
    else the stripe, else the keypad."""
    if card.chip is not None and card.track2:
        return "chip"
    return "magstripe" if card.track2 else "manual"
