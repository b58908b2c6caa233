"""Micro-benchmark of the MACs and the PIN translation, psec (a new cipher per operation) against the
contexts cached per key (`posgate.security.ciphers`), in one process with no sockets and no store — the
figure that does not depend on what else the shared machine runs (docs/performance.md).

    nice -n 5 .venv/bin/python -m tools.mac_bench [--n 20000] [--rounds 5]

Each operation runs `n` times per round, rounds alternate between the two implementations, and the best
round of each is printed (µs per operation), with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable

from psec import des, mac
from psec import pin as psec_pin

from posgate.security import ciphers
from posgate.security.pin import IBM3624_CONVERSION_TABLE, IBM3624_PAN_PAD, pin_offset

SALE_LENGTH = 136  # bytes a 0200 sale covers with its MAC (MTI … field 63), about


def _psec_retail(key: bytes, data: bytes) -> bytes:
    return mac.generate_retail_mac(key[:8], key[8:], data, padding=1)


def _cached_retail(key: bytes, data: bytes) -> bytes:
    return ciphers.retail_mac(key[:8], key[8:], data)


def _psec_translate(keys: tuple[bytes, bytes], block: bytes) -> bytes:
    return des.encrypt_tdes_ecb(keys[1], des.decrypt_tdes_ecb(keys[0], block))


def _cached_translate(keys: tuple[bytes, bytes], block: bytes) -> bytes:
    return ciphers.tdes_ecb_encrypt(keys[1], ciphers.tdes_ecb_decrypt(keys[0], block))


def _psec_offset(pvk: bytes, pan: str) -> str:
    return psec_pin.generate_ibm3624_offset(
        pvk, IBM3624_CONVERSION_TABLE, "123456", pan[-16:], 0, 16, IBM3624_PAN_PAD
    )


def _cached_offset(pvk: bytes, pan: str) -> str:
    return pin_offset(pvk, "123456", pan)


def _best_us(operation: Callable[[], object], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            operation()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # psec's TripleDES deprecation warning: its cost is part of the figure
    key, data = os.urandom(16), os.urandom(SALE_LENGTH)
    keys, block = (os.urandom(16), os.urandom(16)), os.urandom(8)
    assert _psec_retail(key, data) == _cached_retail(key, data)
    assert _psec_translate(keys, block) == _cached_translate(keys, block)
    assert _psec_offset(key, "6229990000000012") == _cached_offset(key, "6229990000000012")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'operation':<34}{'psec µs':>10}{'cached µs':>11}{'speed-up':>10}")
    cases = [
        (f"X9.19 retail MAC, {SALE_LENGTH} bytes", _psec_retail, _cached_retail, key, data),
        ("PIN block translation (2 × 3DES)", _psec_translate, _cached_translate, keys, block),
        ("IBM 3624 PIN offset (issuer check)", _psec_offset, _cached_offset, key, "6229990000000012"),
    ]
    for name, slow, fast, k, d in cases:
        old = _best_us(lambda s=slow, k=k, d=d: s(k, d), args.n, args.rounds)
        new = _best_us(lambda f=fast, k=k, d=d: f(k, d), args.n, args.rounds)
        print(f"{name:<34}{old:>10.1f}{new:>11.1f}{old / new:>9.1f}×")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
