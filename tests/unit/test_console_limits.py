"""The console's pure guards: which address a request comes from (`api/proxies.py`, its doctests too),
the password pool's bound (`api/hash_worker.py`) and the settings that configure them."""

from __future__ import annotations

import doctest
import threading
import time

import pytest

from posgate.api import proxies, throttle
from posgate.api.errors import Overloaded
from posgate.api.hash_worker import HashWorker
from posgate.config import load_settings
from posgate.errors import ConfigError


@pytest.mark.parametrize("module", [proxies, throttle])
def test_doctests(module: object) -> None:
    failed, tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert tried > 0 and failed == 0


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("127.0.0.1", "1.2.3.4", "127.0.0.1"),  # no trusted proxy: the header is ignored
        ("10.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client wrote 6.6.6.6; the proxy appended 1.2.3.4
        ("10.0.0.1", "1.2.3.4, 10.0.0.7", "1.2.3.4"),  # two proxies of ours
        ("10.0.0.1", "10.0.0.8, 10.0.0.7", "10.0.0.1"),  # only proxies: the peer
        ("10.0.0.1", "1.2.3.4, not-an-ip", "10.0.0.1"),
        ("10.0.0.1", "", "10.0.0.1"),
        ("2001:db8::5", "2001:db8:1::9", "2001:db8:1::9"),
    ],
)
def test_the_caller_is_the_rightmost_untrusted_hop(peer: str, header: str, expected: str) -> None:
    trusted = proxies.networks(["10.0.0.0/8", "127.0.0.2", "2001:db8::/64"])
    assert proxies.client_address(peer, header, trusted if peer != "127.0.0.1" else ()) == expected


def test_the_pool_computes_at_most_its_workers_and_admits_at_most_its_queue() -> None:
    worker = HashWorker(workers=2, queue=5)
    refused = []
    done = []
    go = threading.Barrier(20)

    def login() -> None:
        go.wait()
        try:
            with worker.admitted():
                done.append(worker.run(lambda: time.sleep(0.05) or 1))
        except Overloaded as exc:
            refused.append(exc.retry_after_s)

    threads = [threading.Thread(target=login) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    worker.close()
    assert worker.peak_running == 2
    assert len(done) >= 5 and len(done) + len(refused) == 20 and refused and set(refused) == {1}


def test_login_settings_are_validated() -> None:
    settings = load_settings(trusted_proxies="10.0.0.0/8, 192.0.2.1")
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    assert load_settings().trusted_proxies == []
    with pytest.raises(
        ConfigError, match="trusted_proxies: Value error, entry 2 is not an IP address or CIDR"
    ):
        load_settings(trusted_proxies=["10.0.0.1", "proxy.example"])
    with pytest.raises(ConfigError, match="login_max_failures"):
        load_settings(login_max_failures=0)
