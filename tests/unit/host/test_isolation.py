"""The host core (context, pipeline, runner, steps, ports) imports no database or network library."""

from __future__ import annotations

import subprocess
import sys

CORE = ["posgate.host.pipeline", "posgate.host.runner", "posgate.host.ports", "posgate.txnset"]
IO_LIBRARIES = ["sqlalchemy", "asyncio", "socket", "fastapi", "typer"]


def test_the_host_core_imports_no_io_library() -> None:
    code = (
        f"import sys\nfor m in {CORE!r}: __import__(m)\n"
        f"print(','.join(lib for lib in {IO_LIBRARIES!r} if lib in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
