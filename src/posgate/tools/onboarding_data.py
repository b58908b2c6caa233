"""Helpers for tests and demos of the onboarding API: small valid photos made with Pillow, a valid
application form (a computed ID number, a demo debit card), and signing in through the API.
Plain functions, no pytest: the test modules build their fixtures from these."""

from __future__ import annotations

import datetime as dt
import io
import random
from typing import Any

from PIL import Image

from posgate.merchants.idcard import check_char as id_check_char
from posgate.merchants.images import PHOTO_KINDS

DEMO_DEBIT_CARD = "6229990000000012"  # Demo Bank A, debit
DEMO_CREDIT_CARD = "6228880000000016"  # Demo Bank B, credit
DEMO_PASSWORD = "posgate-demo"


def id_number(birth: dt.date = dt.date(1990, 3, 7), region: str = "440106", sequence: str = "123") -> str:
    """A valid GB 11643 ID number for `birth`.

    >>> id_number(dt.date(1949, 12, 31), "110105", "002")
    '11010519491231002X'
    """
    first17 = f"{region}{birth:%Y%m%d}{sequence}"
    return first17 + id_check_char(first17)


def photo(fmt: str = "JPEG", seed: int = 0, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small noisy image (noise keeps it above the 1 KiB minimum), different for each seed."""
    rng = random.Random(seed)
    pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    image = Image.frombytes("RGB", size, pixels)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def photo_files(seed: int = 0) -> dict[str, tuple[str, bytes, str]]:
    """The five photos as TestClient / httpx multipart files: kind → (file name, bytes, content type)."""
    files = {}
    for n, kind in enumerate(PHOTO_KINDS):
        fmt = "PNG" if n % 2 else "JPEG"
        ext, mime = ("png", "image/png") if fmt == "PNG" else ("jpg", "image/jpeg")
        files[kind] = (f"{kind}.{ext}", photo(fmt, seed * 10 + n), mime)
    return files


def form_values(**overrides: str) -> dict[str, str]:
    """A valid application form; keyword arguments replace fields (an empty string removes one)."""
    values = {
        "applicant_name": "Zhang San",
        "id_number": id_number(),
        "mobile": "13800138000",
        "settlement_card": DEMO_DEBIT_CARD,
        "settlement_card_holder": "Zhang San",
        "shop_name": "Happy Noodles",
        "address": "广州市天河区体育西路 1 号",
        "business_type": "restaurant",
        "licence_number": "91350100M000100Y43",
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value != ""}


def sign_in(client: Any, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    """Sign `client` in through the API (its cookie jar keeps the session); returns the CSRF header."""
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}
