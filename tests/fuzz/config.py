"""Fuzz target: the configuration loader (`load_settings`: `POSGATE_*` environment variables and the TOML
file that `POSGATE_CONFIG` names).

Input: a TOML document, then optionally a line `---` and environment lines `NAME=value` (each becomes
`POSGATE_NAME`); if the first byte is `!`, `POSGATE_CONFIG` names a file that does not exist.
Contract: `load_settings()` returns `Settings` (whose paths hold no NUL: that would only fail, with a
traceback, when the file is opened) or raises `ConfigError` whose text is one line starting
`invalid configuration: ` and never carries a 32-hex-digit value (a zone key); nothing else escapes.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from posgate.config import Settings, load_settings
from posgate.errors import ConfigError
from tests.fuzz._harness import INSTRUMENTED, check_refusal, fuzz

_SCRATCH = Path(
    tempfile.mkdtemp(prefix="posgate-fuzz-config-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
)
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
_TOML = _SCRATCH / "posgate.toml"
_KEY = re.compile(r"[0-9A-Fa-f]{32}")


def _environment(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        name = "POSGATE_" + name.strip().upper()
        if (
            "\x00" in name
            or "\x00" in value
            or not name.isprintable()
            or "=" in name[8:]
            or name == "POSGATE_"
        ):
            continue
        env[name] = value
    return env


def _paths(value: object) -> list[Path]:
    """Every Path in a dumped Settings (issuers' TLS files included)."""
    if isinstance(value, Path):
        return [value]
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _paths(v)]
    return []


def one_input(data: bytes) -> None:
    missing = data[:1] == b"!"
    toml, _, env_text = data[missing:].partition(b"\n---\n")
    _SCRATCH.mkdir(exist_ok=True)
    _TOML.write_bytes(toml)
    saved = {k: v for k, v in os.environ.items() if k.startswith("POSGATE_")}
    for name in saved:
        del os.environ[name]
    try:
        os.environ.update(_environment(env_text.decode("utf-8", "replace")))
        os.environ["POSGATE_CONFIG"] = str(_SCRATCH / "absent.toml") if missing else str(_TOML)
        try:
            settings = load_settings()
        except ConfigError as error:
            check_refusal(error)
            text = str(error)
            assert text.startswith("invalid configuration: "), text
            assert not _KEY.search(text), f"a key-like value in {text!r}"
            return
        assert isinstance(settings, Settings)
        assert all(len(issuer.zak.get_secret_value()) == 32 for issuer in settings.issuers)
        bad = [str(p) for p in _paths(settings.model_dump()) if "\x00" in str(p)]
        assert not bad, f"a path with a NUL (fails only when opened): {bad!r}"
    finally:
        for name in [k for k in os.environ if k.startswith("POSGATE_")]:
            del os.environ[name]
        os.environ.update(saved)


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input, (*INSTRUMENTED, "pydantic", "pydantic_settings", "tomllib"))
