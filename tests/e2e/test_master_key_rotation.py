"""`posgate keys rotate-master` against running hosts taking traffic (issue 9, build item 6): two host
nodes — this process (host, issuer simulator, console) and a separate `posgate host` — keep selling,
signing in (new working keys sealed) and reading sealed keys while another process rotates the master key.
No request fails; both nodes move to the new version by themselves; a reversal queued before the rotation
is delivered after it (its PAN re-encrypted meanwhile); afterwards the keyring holds only the new version,
which opens every sealed value, and the old key opens none."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from posgate.bootstrap.stack import Running, start_all
from posgate.logs import configure_logging
from posgate.security.at_rest import CardVault
from posgate.security.keyring import read_keyring
from posgate.security.keys import kcv
from posgate.store.acquirer import pending_saf_count, provision_terminal
from posgate.store.rekey import SEALED_COLUMNS, reseal_batch
from posgate.terminal import TerminalClient, TerminalState, demo_card, demo_terminal_state
from posgate.tools.onboarding_data import form_values, photo_files

from .conftest import stack_settings
from .helpers import eventually

pytestmark = pytest.mark.slow

CARD_A = demo_card("6229990000000012")  # Demo Bank A: answers throughout
CARD_B = demo_card("6228880000000016")  # Demo Bank B: silent until after the rotation
SECOND_TID, SECOND_TMK = "10000009", bytes.fromhex("505152535455565758595A5B5C5D5E5F")
# sign-ins are frequent here (new working keys sealed during the rotation): above the default rate limit
RELOAD = {
    "POSGATE_MASTER_KEY_RELOAD_S": "0.2",
    "POSGATE_ENV": "test",
    "POSGATE_TERMINAL_CACHE_S": "0",
    "POSGATE_SIGN_IN_LIMIT": "1000",
}


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**{k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"}, **RELOAD}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posgate",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _traffic(terminal: TerminalClient, stop: asyncio.Event, codes: list[str]) -> None:
    """Sales, balance inquiries and, every 8th round, a sign-in, until `stop`."""
    n = 0
    while not stop.is_set():
        n += 1
        if n % 8 == 0:
            result = await terminal.sign_in()
        elif n % 3 == 0:
            result = await terminal.balance(CARD_A, "123456")
        else:
            result = await terminal.sale(CARD_A, "123456", 1)
        codes.append(result.response_code if result.mac_ok is not False else "mac")


async def test_the_master_key_is_rotated_while_two_nodes_take_traffic(
    tmp_path: Path, database_url: str
) -> None:
    settings = stack_settings(tmp_path, database_url, master_key_reload_s=0.2, sign_in_limit=1000)
    configure_logging(settings.data_dir, "INFO", console=False)
    running: Running = await start_all(settings, console=True)
    node_b = None
    try:
        assert running.issuers is not None and running.console_address is not None
        store, vault = running.handle.store, running.handle.vault
        old_key = read_keyring(settings.master_key_path).keys[1]
        await store.run(
            lambda s: provision_terminal(s, vault, SECOND_TID, "898440153110001", SECOND_TMK, kcv(SECOND_TMK))
        )
        ports = dict(running.issuers.ports)
        node_b = await _spawn(
            "host",
            "--data-dir",
            str(settings.data_dir),
            "--database-url",
            settings.resolved_database_url,
            "--pos-port",
            "0",
            "--issuer-ports",
            ",".join(str(ports[n]) for n in sorted(ports)),
        )
        assert node_b.stdout is not None
        line = ""
        while not line.startswith("posgate ready pos="):  # `posgate ops …` and others come first
            line = (await asyncio.wait_for(node_b.stdout.readline(), 60)).decode()
            assert line, "posgate host ended before its ready line"
        host_b, port_b = line.strip().split("=", 1)[1].rsplit(":", 1)
        # before: an application with a settlement card, and a reversal that cannot be delivered yet
        base = f"http://{running.console_address[0]}:{running.console_address[1]}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            login = await api.post(
                "/api/auth/login", json={"username": "operator", "password": "posgate-demo"}
            )
            csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
            filed = await api.post("/api/applications", data=form_values(), files=photo_files(), headers=csrf)
            assert filed.status_code == 201, filed.text
        terminal_a = TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=15)
        state_b = TerminalState(
            tid=SECOND_TID, mid="898440153110001", tmk_hex=SECOND_TMK.hex().upper(), mac_algorithm="x919"
        )
        terminal_b = TerminalClient(host_b, int(port_b), state_b, timeout_s=15)
        async with terminal_a, terminal_b:
            assert (await terminal_a.sign_in()).approved and (await terminal_b.sign_in()).approved
            running.issuers.set_fault("Demo Bank B", "drop_requests")
            assert (await terminal_a.sale(CARD_B, "123456", 700)).response_code == "98"  # 0420 queued
            stop = asyncio.Event()
            codes_a: list[str] = []
            codes_b: list[str] = []
            traffic = [
                asyncio.create_task(_traffic(terminal_a, stop, codes_a)),
                asyncio.create_task(_traffic(terminal_b, stop, codes_b)),
            ]
            await asyncio.sleep(0.5)
            during = (len(codes_a), len(codes_b))
            started = time.monotonic()
            rotation = await _spawn(
                "keys",
                "rotate-master",
                "--data-dir",
                str(settings.data_dir),
                "--database-url",
                settings.resolved_database_url,
                "--wait-s",
                "1",
                "--batch-size",
                "20",
            )
            out, err = await asyncio.wait_for(rotation.communicate(), 180)
            rotated_in = time.monotonic() - started
            await asyncio.sleep(1.0)  # traffic after the old key is gone
            stop.set()
            await asyncio.gather(*traffic)
        assert rotation.returncode == 0, out.decode() + err.decode()
        assert "retired master key version(s) 1" in out.decode()
        assert len(codes_a) > during[0] + 5 and len(codes_b) > during[1] + 5, (
            during,
            len(codes_a),
            len(codes_b),
        )
        assert set(codes_a) == {"00"} and set(codes_b) == {"00"}, (codes_a, codes_b)
        keyring = read_keyring(settings.master_key_path)
        assert keyring.versions == [2]
        assert vault.current_version == 2  # this process loaded it by itself
        log = (settings.data_dir / "posgate.log").read_text()
        assert log.count("master keyring reloaded") >= 2  # and so did node B
        # the reversal queued under the old key goes out now
        running.issuers.set_fault("Demo Bank B", "none")

        async def delivered() -> bool:
            return await store.run(pending_saf_count) == 0

        assert await eventually(delivered, timeout_s=15)
        # every sealed value opens under the new key alone, none under the old
        fresh, old = CardVault(keyring), CardVault(old_key)
        for spec in SEALED_COLUMNS:
            after = 0
            while True:
                batch = await store.run(
                    lambda s, spec=spec, after=after: reseal_batch(s, fresh, spec, after, 100, False)
                )
                if batch.last_id is None:
                    break
                assert (batch.older, batch.unreadable) == (0, 0), spec.name
                old_batch = await store.run(
                    lambda s, spec=spec, after=after: reseal_batch(s, old, spec, after, 100, False)
                )
                assert old_batch.unreadable == old_batch.seen == batch.seen, spec.name
                after = batch.last_id
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            login = await api.post(
                "/api/auth/login", json={"username": "reviewer", "password": "posgate-demo"}
            )
            shown = await api.get(f"/api/applications/{filed.json()['id']}")
            assert shown.status_code == 200, shown.text  # its sealed fields open
        print(f"rotation took {rotated_in:.1f} s; {len(codes_a) + len(codes_b)} requests, all approved")
    finally:
        if node_b is not None:
            with contextlib.suppress(ProcessLookupError):
                node_b.terminate()
            await node_b.wait()
        await running.stop()
