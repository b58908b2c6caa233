"""Master-key and key-period operations in the audit trail (issue 9, build item 6): the master key created
at a store's first start, and `posgate keys rotate` (a new working-key period), each recorded with
fingerprints or periods — never key material. The rotation of the master key itself is checked in
test_master_key_rotation.py, the per-terminal key uses in tests/e2e/test_key_audit.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.security.keyring import read_keyring
from posgate.store.models_onboarding import AuditEvent


def _events(settings: Settings, kind: str) -> list[tuple[str, str, str, dict[str, object]]]:
    handle = open_store(settings, load_demo=False)
    try:
        return handle.store.transact(
            lambda s: [
                (e.actor, e.action, e.subject_ref, json.loads(e.detail))
                for e in s.scalars(
                    select(AuditEvent).where(AuditEvent.subject_kind == kind).order_by(AuditEvent.id)
                )
            ]
        )
    finally:
        handle.store.close()


def test_the_master_key_created_at_first_start_is_audited_once(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, env="test")
    open_store(settings).store.close()
    open_store(settings).store.close()  # a second start creates nothing
    keyring = read_keyring(settings.master_key_path)
    events = _events(settings, "master_key")
    assert [(actor, action, ref) for actor, action, ref, _ in events] == [
        ("system", "master_key_created", "v1")
    ]
    assert events[0][3] == {"fingerprint": keyring.fingerprint(1), "path": str(settings.master_key_path)}
    assert keyring.keys[1].hex() not in json.dumps(events).lower()


def test_a_new_working_key_period_is_audited(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "posgate", "keys", "rotate", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "POSGATE_ENV": "test"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "key period is now 2"
    events = _events(Settings(data_dir=data_dir, env="test"), "key")
    rotated = [(who, ref, detail) for who, action, ref, detail in events if action == "key_period_rotated"]
    assert rotated == [("operator", "working_keys", {"period": 2, "previous": 1})]
