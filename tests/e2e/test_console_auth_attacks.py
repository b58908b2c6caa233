"""Issue 9, finding 6 (console: authentication and resources), each attack performed over real HTTP against
a running console (`start_all(console=True)`, loopback) on SQLite and PostgreSQL: login throttling
bypassed with `X-Forwarded-For`, concurrent guesses racing the throttle (two console nodes on one store),
password spraying over usernames, a chunked body sent before authentication and past the size limit, and a
logout without the CSRF token.

A password check is seen from outside: a 401 is a checked wrong password, a 429 (or 503) an attempt refused
before any check."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from posgate.bootstrap.stack import Running, start_all
from posgate.logs import configure_logging
from posgate.store.models_onboarding import AuditEvent
from posgate.tools.onboarding_data import form_values, photo_files

from .conftest import stack_settings

PASSWORD = "posgate-demo"
Console = Callable[..., Awaitable[tuple[Running, str]]]


@pytest.fixture
async def console(tmp_path: Path, database_url: str) -> AsyncIterator[Console]:
    """Starts the stack with its console (settings overrides as keywords); its base URL."""
    started: list[Running] = []

    async def start(**overrides: object) -> tuple[Running, str]:
        settings = stack_settings(tmp_path, database_url, **overrides)
        configure_logging(settings.data_dir, "INFO", console=False)
        running = await start_all(settings, issuers=False, host=False, console=True)
        started.append(running)
        assert running.console_address is not None
        host, port = running.console_address
        return running, f"http://{host}:{port}"

    yield start
    for running in started:
        await running.stop()


async def _login(
    api: httpx.AsyncClient, username: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await api.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


def _audited(running: Running, action: str) -> list[dict[str, object]]:
    rows = running.handle.store.transact(
        lambda s: [
            (row.actor, row.subject_kind, row.subject_ref, row.detail)
            for row in s.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        ]
    )
    return [{"actor": a, "kind": k, "ref": r, **json.loads(d)} for a, k, r, d in rows]


async def test_a_forged_x_forwarded_for_does_not_reset_the_lockout(console: Console) -> None:
    running, base = await console()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        for n in range(5):
            wrong = await _login(api, "admin", f"guess-{n}-guess", forwarded_for=f"198.51.100.{n}")
            assert wrong.status_code == 401, wrong.text
        # the attack: a new X-Forwarded-For per guess (uvicorn believed it from 127.0.0.1)
        answers = [
            (await _login(api, "admin", f"more-{n}-guess", forwarded_for=f"203.0.113.{n}")).status_code
            for n in range(10)
        ]
        assert answers == [429] * 10  # not one more password checked
        right = await _login(api, "admin", PASSWORD, forwarded_for="192.0.2.77")
        assert right.status_code == 429, "the right password must be refused while locked out"
        assert 1 <= int(right.headers["Retry-After"]) <= 300
        form = await api.post(
            "/login",
            data={"username": "admin", "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.78"},
        )
        assert form.status_code == 429 and int(form.headers["Retry-After"]) > 0  # the console's form too
        assert right.json()["error"] == {
            "code": "rate_limited",
            "field": "username",
            "message": "username: 5 failed logins from this address; try again in 5 minutes",
        }
    locks = _audited(running, "login_locked")
    assert [(e["kind"], e["ref"], e["ip"], e["limit"]) for e in locks] == [
        ("user", "admin", "127.0.0.1", "username")
    ]


async def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_caller(console: Console) -> None:
    _running, base = await console(trusted_proxies=["127.0.0.0/8"])
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        # each guess prepends a fresh address; the proxy appends the one it saw: 203.0.113.5
        for n in range(5):
            chain = f"10.9.9.{n}, 203.0.113.5"
            assert (await _login(api, "admin", f"guess-{n}-guess", forwarded_for=chain)).status_code == 401
        assert (
            await _login(api, "admin", PASSWORD, forwarded_for="10.1.1.1, 203.0.113.5")
        ).status_code == 429
        # another client behind the same proxy is another address
        assert (await _login(api, "admin", PASSWORD, forwarded_for="203.0.113.6")).status_code == 200


async def _spawn_console(running: Running, tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    """A second console node (`posgate console`, its own process) on the same store."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"}
    env["POSGATE_ENV"] = "test"
    url = running.handle.store.engine.url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posgate",
        "console",
        "--data-dir",
        str(data_dir),
        "--database-url",
        url,
        "--console-port",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    assert line.startswith("posgate console http://"), line
    return process, line.split(" ", 2)[2].strip().rstrip("/")


async def test_thirty_concurrent_guesses_on_two_nodes_get_exactly_five_checks(
    console: Console, tmp_path: Path
) -> None:
    running, base = await console()
    second, base_b = await _spawn_console(running, tmp_path)
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=60) as api_a,
            httpx.AsyncClient(base_url=base_b, timeout=60) as api_b,
        ):
            guesses = [_login(api_a if n % 2 else api_b, "admin", f"race-{n}-guess") for n in range(30)]
            answers = Counter(r.status_code for r in await asyncio.gather(*guesses))
            assert answers[401] == 5, answers  # the limit of checks, not one more
            assert answers[401] + answers[429] + answers[503] == 30, answers
            assert (await _login(api_a, "admin", PASSWORD)).status_code == 429
    finally:
        second.terminate()
        await second.wait()
    assert len(_audited(running, "login_locked")) == 1


async def test_spraying_one_password_over_many_usernames_is_throttled_per_address(console: Console) -> None:
    running, base = await console()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        answers = [(await _login(api, f"user{n:02d}", "Spring2026!")).status_code for n in range(30)]
        assert answers == [401] * 20 + [429] * 10
        locked = await _login(api, "risk", PASSWORD)  # even a right password, from this address
        assert locked.status_code == 429
        assert locked.json()["error"]["message"].startswith("too many failed logins from this address")
        assert int(locked.headers["Retry-After"]) > 0
    locks = _audited(running, "login_locked")
    assert [(e["kind"], e["ref"], e["limit"]) for e in locks] == [("address", "127.0.0.1", "address")]


async def test_signing_in_to_ones_own_account_does_not_wipe_the_address_count(console: Console) -> None:
    _running, base = await console(login_max_failures_per_address=6)
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        answers = []
        for n in range(8):
            answers.append((await _login(api, f"victim{n}", "Spring2026!")).status_code)
            if n < 5:  # between guesses, the attacker signs in to an account of its own
                assert (await _login(api, "operator", PASSWORD)).status_code == 200
        assert answers == [401] * 6 + [429] * 2


async def test_logout_needs_the_csrf_token(console: Console) -> None:
    _running, base = await console()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        signed = await _login(api, "operator", PASSWORD)
        csrf = signed.json()["csrf_token"]
        # a cross-site form or fetch: the cookie goes along, the token does not
        forged = await api.post("/api/auth/logout")
        assert forged.status_code == 403 and forged.json()["error"]["field"] == "csrf_token"
        assert (await api.get("/api/auth/me")).status_code == 200  # still signed in
        forged_form = await api.post("/logout", data={"csrf_token": "not-the-token"})
        assert forged_form.status_code == 403
        assert (await api.get("/api/auth/me")).status_code == 200
        assert (await api.get("/logout")).status_code == 405  # never on GET
        done = await api.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200
        assert (await api.get("/api/auth/me")).status_code == 401


# --- request bodies -------------------------------------------------------------------------------

LIMIT = 32 * 1024 * 1024
CHUNK = 256 * 1024


def _chunked_upload(address: tuple[str, int], headers: dict[str, str], total: int) -> tuple[int, int, bytes]:
    """POST a multipart body of `total` bytes, chunked, to /api/applications, stopping as soon as an
    answer arrives: (bytes sent before it, status, answer's first bytes)."""
    boundary = "posgateboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="id_front"; filename="id.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    lines = [
        "POST /api/applications HTTP/1.1",
        f"Host: {address[0]}:{address[1]}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        "Transfer-Encoding: chunked",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sent = 0
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.setblocking(False)
        answer = b""
        body = head + b"\x89PNG" + b"\0" * (CHUNK - len(head) - 4)
        while sent < total:
            try:
                answer = sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            try:
                sock.setblocking(True)
                sock.settimeout(5)
                sock.sendall(b"%x\r\n%s\r\n" % (len(body), body))
                sent += len(body)
                body = b"\0" * CHUNK
            except (ConnectionError, TimeoutError):
                break
            finally:
                sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(30)
        if not answer:  # the server read it all: end the body and take its answer
            tail = f"\r\n--{boundary}--\r\n".encode()
            with contextlib.suppress(ConnectionError):
                sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
        while not _complete(answer):
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return sent, status, answer[:2000]


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def _declared_only(address: tuple[str, int], headers: dict[str, str]) -> bytes:
    """Request headers announcing a body, and no body: the answer."""
    lines = ["POST /api/applications HTTP/1.1", f"Host: {address[0]}:{address[1]}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while not _complete(answer):
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    return answer


class _TempWatch:
    """Records every file the process holds open under `folder` (deleted spool files included)."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(self.folder):
                    self.seen.add(target)
            time.sleep(0.005)

    def __enter__(self) -> _TempWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_a_chunked_body_is_refused_before_sign_in_and_cut_at_the_limit_after(
    console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    running, base = await console()
    address = running.console_address
    assert address is not None
    with _TempWatch(spool) as watch:
        sent, status, answer = await asyncio.to_thread(_chunked_upload, address, {}, LIMIT + 8 * 1024 * 1024)
    assert status == 401, answer
    print(f"unauthenticated: {sent} bytes sent before the 401")
    assert sent < 16 * 1024 * 1024, f"{sent} bytes went in before the 401"  # not the 40 MiB: socket buffers
    assert watch.seen == set(), "an unauthenticated body was spooled to a temporary file"
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        signed = await _login(api, "operator", PASSWORD)
        cookie = f"posgate_session={api.cookies['posgate_session']}"
        headers = {"Cookie": cookie, "X-CSRF-Token": signed.json()["csrf_token"]}
        sent, status, answer = await asyncio.to_thread(
            _chunked_upload, address, headers, LIMIT + 32 * 1024 * 1024
        )
        assert status == 413, answer
        assert b'"code":"request_too_large"' in answer
        print(f"signed in: {sent} bytes sent before the 413")
        assert sent < LIMIT + 16 * 1024 * 1024, f"{sent} bytes went in before the 413"
        # a declared length beyond the limit: 413 before reading; and an ordinary application still works
        declared = await asyncio.to_thread(
            _declared_only, address, {**headers, "Content-Length": str(LIMIT + 1)}
        )
        assert declared.startswith(b"HTTP/1.1 413 "), declared
        filed = await api.post("/api/applications", data=form_values(), files=photo_files(), headers=headers)
        assert filed.status_code == 201, filed.text


async def test_an_anonymous_login_body_is_small(console: Console) -> None:
    _running, base = await console()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        padded = {"username": "operator", "password": PASSWORD, "pad": "x" * (64 * 1024)}
        assert (await api.post("/api/auth/login", json=padded)).status_code == 413
        assert (await _login(api, "operator", PASSWORD)).status_code == 200
