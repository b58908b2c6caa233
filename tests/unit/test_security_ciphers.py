"""The cached cipher contexts give psec's bytes: ECB both ways, the retail MAC over any length, keys
interleaved (the CBC chaining trick must cancel whatever the previous message left), and in threads."""

from __future__ import annotations

import os
import random
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psec import des, mac

from posgate.security import ciphers

DOUBLE_KEYS = st.binary(min_size=16, max_size=16)
DES_KEYS = st.sampled_from([8, 16, 24]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def psec_retail(key1: bytes, key2: bytes, data: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mac.generate_retail_mac(key1, key2, data, padding=1)


@settings(max_examples=200, deadline=None)
@given(key=DES_KEYS, blocks=st.integers(1, 6), data=st.data())
def test_ecb_matches_psec_both_ways(key: bytes, blocks: int, data: st.DataObject) -> None:
    plain = data.draw(st.binary(min_size=8 * blocks, max_size=8 * blocks))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = des.encrypt_tdes_ecb(key, plain)
        assert des.decrypt_tdes_ecb(key, plain) == ciphers.tdes_ecb_decrypt(key, plain)
    assert ciphers.tdes_ecb_encrypt(key, plain) == expected
    assert ciphers.tdes_ecb_decrypt(key, expected) == plain


@settings(max_examples=300, deadline=None)
@given(key=DOUBLE_KEYS, messages=st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_retail_mac_matches_psec_message_after_message(key: bytes, messages: list[bytes]) -> None:
    for data in messages:  # one cached CBC context serves them all: each must start from a zero IV
        assert ciphers.retail_mac(key[:8], key[8:], data) == psec_retail(key[:8], key[8:], data)


def test_retail_mac_with_keys_interleaved() -> None:
    rng = random.Random(7)
    keys = [os.urandom(16) for _ in range(5)]
    for _ in range(500):
        key, data = rng.choice(keys), rng.randbytes(rng.randrange(0, 200))
        assert ciphers.retail_mac(key[:8], key[8:], data) == psec_retail(key[:8], key[8:], data)


def test_a_changed_byte_changes_the_mac() -> None:
    key, data = os.urandom(16), bytearray(os.urandom(64))
    before = ciphers.retail_mac(key[:8], key[8:], bytes(data))
    data[0] ^= 1
    assert ciphers.retail_mac(key[:8], key[8:], bytes(data)) != before


def test_threads_have_their_own_contexts() -> None:
    key = os.urandom(16)
    messages = [os.urandom(96) for _ in range(200)]
    expected = [psec_retail(key[:8], key[8:], m) for m in messages]
    results: list[list[bytes]] = [[] for _ in range(4)]

    def work(n: int) -> None:  # an exception here would only end the thread: the results say it happened
        for m in messages:
            results[n].append(ciphers.retail_mac(key[:8], key[8:], m))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ciphers, "MAX_KEYS", 3)
    for _ in range(10):
        key = os.urandom(16)
        assert ciphers.retail_mac(key[:8], key[8:], b"x") == psec_retail(key[:8], key[8:], b"x")
    assert len(ciphers._cache.by_key) <= 3


def test_a_keys_contexts_are_made_once_and_reused() -> None:
    # the point of the module: a second operation under a key finds the first one's contexts
    key = os.urandom(16)
    ciphers.tdes_ecb_encrypt(key, bytes(8))
    contexts = ciphers._cache.by_key[key]
    encryptor, cbc = contexts.encryptor(), contexts.cbc()
    ciphers.tdes_ecb_encrypt(key, bytes(8))
    ciphers.retail_mac(key, key[8:], b"x")  # the CBC pass under the same key (as its left key)
    assert ciphers._cache.by_key[key] is contexts
    assert contexts.encryptor() is encryptor and contexts.cbc() is cbc


def test_partial_blocks_are_refused_by_ecb() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        ciphers.tdes_ecb_encrypt(bytes(16), b"short")


@settings(max_examples=300, deadline=None)
@given(
    pvk=DES_KEYS,
    pin=st.text("0123456789", min_size=4, max_size=12),
    pan=st.text("0123456789", min_size=13, max_size=19),
)
def test_the_pin_offset_is_psecs(pvk: bytes, pin: str, pan: str) -> None:
    from psec import pin as psec_pin

    from posgate.security.pin import IBM3624_CONVERSION_TABLE, IBM3624_PAN_PAD, pin_offset

    validation = pan[-16:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = psec_pin.generate_ibm3624_offset(
            pvk, IBM3624_CONVERSION_TABLE, pin, validation, 0, len(validation), IBM3624_PAN_PAD
        )
    assert pin_offset(pvk, pin, pan) == expected
