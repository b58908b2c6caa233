"""Demo card profiles: the track 2 the fixture's issuers would write, and masking."""

from __future__ import annotations

import pytest

from posgate.errors import ConfigError, EncodeError
from posgate.terminal.cards import demo_card, manual_card

# shared/spec/fixture-vectors.json (an independent computation)
TRACK2 = {
    "6229990000000012": "6229990000000012D3012101136169110300",
    "6229990000000020": "6229990000000020D3012101141590567300",
    "6229990000000038": "6229990000000038D2001101154164609900",
    "6229990000000046": "6229990000000046D3012101152252407400",
    "6229990000000053": "6229990000000053D3012101174445671000",
    "6228880000000016": "6228880000000016D3012201135284959400",
    "6228880000000024": "6228880000000024D3012101192290015100",
    "6228880000000032": "6228880000000032D3012201116925322500",
}


@pytest.mark.parametrize("pan", sorted(TRACK2))
def test_demo_cards_reproduce_the_fixture_vectors(pan: str) -> None:
    assert demo_card(pan).track2 == TRACK2[pan]


def test_demo_card_by_profile() -> None:
    card = demo_card("debit-pin888")
    assert (card.pan, card.expiry, card.service_code, card.default_pin) == (
        "6229990000000053",
        "3012",
        "101",
        "888888",
    )
    chip = demo_card("credit-chip")
    assert (chip.psn, chip.is_chip, card.is_chip) == ("01", True, False)
    with pytest.raises(ConfigError):
        demo_card("no-such-card")


def test_repr_masks_card_data() -> None:
    card = demo_card("debit-ok")
    text = repr(card) + str(card)
    assert "622999******0012" in text
    assert card.pan not in text
    assert "136169" not in text and card.default_pin not in text


def test_manual_card() -> None:
    card = manual_card("6229990000000053", "3012")
    assert (card.track2, card.service_code, card.default_pin) == (None, "", "888888")
    assert manual_card("6229990000000013", "2512").default_pin == "123456"
    with pytest.raises(EncodeError):
        manual_card("62299900", "3012")
    with pytest.raises(EncodeError):
        manual_card("6229990000000012", "30-12")
