"""A console served for real: uvicorn on a loopback port (port 0) in a background thread, over a fresh store
(the demo fixture loaded, the demo users created), with helpers to sign in and to file an application.
Used by the hostile-input tests and the schemathesis run; plain functions, no pytest."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from posgate.api.app import create_app
from posgate.api.users import create_api_key
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import DEMO_PASSWORD, form_values, photo_files


@dataclass
class LiveConsole:
    base_url: str
    app: FastAPI
    handle: StoreHandle

    def api_key(self, role: str = "admin", label: str = "test") -> str:
        _key_id, key = self.handle.store.transact(lambda s: create_api_key(s, label, role, "admin"))
        return key

    def client(self, api_key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0, follow_redirects=False)

    @contextmanager
    def signed_in(self, username: str = "admin") -> Iterator[tuple[httpx.Client, str]]:
        """A client holding a console session of `username`, and the session's CSRF token."""
        with self.client() as client:
            response = client.post("/api/auth/login", json={"username": username, "password": DEMO_PASSWORD})
            assert response.status_code == 200, response.text
            yield client, response.json()["csrf_token"]

    def application_under_review(self, api_key: str, seed: int = 0) -> int:
        """File an application through the API and start its review; its id."""
        with self.client(api_key) as client:
            files = {k: v for k, v in photo_files(seed).items()}
            filed = client.post("/api/applications", data=form_values(), files=files)
            assert filed.status_code == 201, filed.text
            app_id = filed.json()["id"]
            started = client.post(f"/api/applications/{app_id}/start-review")
            assert started.status_code == 200, started.text
        return int(app_id)

    def a_mid_and_tid(self, api_key: str) -> tuple[str, str]:
        with self.client(api_key) as client:
            merchant = client.get("/api/merchants").json()[0]
            detail = client.get(f"/api/merchants/{merchant['mid']}").json()
        return merchant["mid"], detail["terminals"][0]["tid"]


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no csrf_token on the page"
    return match.group(1)


@contextmanager
def live_console(tmp_path: Path, database_url: str | None = None) -> Iterator[LiveConsole]:
    """The console on 127.0.0.1:<free port> until the block ends."""
    extra = {"database_url": database_url} if database_url else {}
    settings = Settings(data_dir=tmp_path / "data", env="test", **extra)
    handle = open_store(settings)
    app = create_app(handle, settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="live-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveConsole(f"http://127.0.0.1:{port}", app, handle)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        handle.store.close()
