"""`[[issuers]]` validation (config.IssuerConfig): a ZAK only when the link MACs, unknown keys refused, and
the keys never echoed by posgate's own messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from posgate.config import IssuerConfig, Settings

ZPK = "1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A"
ZAK = "22222222222222222222222222222222"
BASE = {"name": "Plain Bank", "bins": ["621234"], "port": 7001, "zpk": ZPK}


def test_an_issuer_without_macs_needs_no_zak() -> None:
    issuer = IssuerConfig(**BASE, mac=False)
    assert issuer.zak is None and issuer.mac is False


def test_an_issuer_with_macs_needs_a_zak_and_the_message_says_which_setting() -> None:
    with pytest.raises(ValidationError) as caught:
        IssuerConfig(**BASE)  # mac defaults to true
    (error,) = caught.value.errors()
    assert error["msg"] == (
        "Value error, issuer 'Plain Bank': zak is required when mac = true (the zone MAC key, 32 hex"
        " digits); set mac = false for an issuer that uses no MACs"
    )
    assert IssuerConfig(**BASE, zak=ZAK).zak is not None


def test_a_bad_zak_is_refused_without_posgate_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        IssuerConfig(**BASE, zak="XYZ")
    (error,) = caught.value.errors()
    assert error["loc"] == ("zak",)
    assert error["msg"] == "Value error, must be 32 hex digits (a double-length 3DES key)"


def test_an_unknown_key_in_an_issuer_entry_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(issuers=[{**BASE, "mac": False, "macs": False}])
    (error,) = caught.value.errors()
    assert error["loc"] == ("issuers", 0, "macs") and error["type"] == "extra_forbidden"
