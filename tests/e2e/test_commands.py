"""The command-line contract: `posgate up` prints its ready line and serves; `posgate decode` prints JSON
or a one-line error with exit status 2; `posgate demo` plays its story; `posgate terminal` drives a sale."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.default_risk_rules  # the host's own default risk rules

POSGATE = [sys.executable, "-m", "posgate"]
PUBLIC_FRAME = (
    "007F600003000060321032007202003020048000C08015000000000000001234000002030099303030303030303139"
    "353237313831383232313738373531353600192600000100060000000000435F01123238343431323334353637383930"
    "313233345F03063136303033365F04063230303832365C0230314233413039324145"
)


def run(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        POSGATE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


def test_decode_prints_the_fields_as_json(tmp_path: Path) -> None:
    done = run(["decode", "--dialect", "pos", "--frame", PUBLIC_FRAME], tmp_path)
    assert done.returncode == 0, done.stderr
    decoded = json.loads(done.stdout)
    assert decoded["mti"] == "0200"
    assert decoded["tpdu"] == "6000030000"
    assert decoded["header"] == "603210320072"
    assert decoded["fields"]["3"] == "000000"
    assert decoded["fields"]["64"] == "4233413039324145"


def test_decode_names_the_bad_field_and_exits_2(tmp_path: Path) -> None:
    # a 0800 whose field 11 holds a non-BCD byte
    done = run(["decode", "--dialect", "pos", "08000020000000800000AB00013130303030303031"], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "field 11" in lines[0], done.stderr


def test_decode_masks_the_pan_unless_revealed(tmp_path: Path) -> None:
    from posgate.iso8583.codec import encode_pos

    msg = encode_pos({"t": "0200", "2": "6229990000000012", "3": "000000", "11": "000001"}).hex()
    masked = json.loads(run(["decode", msg], tmp_path).stdout)
    revealed = json.loads(run(["decode", "--reveal", msg], tmp_path).stdout)
    assert masked["fields"]["2"] == "622999******0012"
    assert revealed["fields"]["2"] == "6229990000000012"


@pytest.mark.slow
def test_up_prints_its_ready_line_and_a_terminal_can_sell(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*POSGATE, "up", "--data-dir", str(tmp_path / "data"), "--pos-port", "0", "--issuer-ports", "0,0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = ""
        for line in proc.stdout:
            if line.startswith("posgate ready pos="):
                ready = line.strip()
                break
        assert ready, "no ready line"
        port = ready.rsplit(":", 1)[1]
        sale = run(
            ["terminal", "sale", "12.34", "--port", port, "--state-file", str(tmp_path / "t.json")],
            tmp_path,
        )
        assert sale.returncode == 0, sale.stdout + sale.stderr
        assert "622999******0012" in sale.stdout and "6229990000000012" not in sale.stdout
        declined = run(
            [
                "terminal",
                "sale",
                "20",
                "--card",
                "debit-low",
                "--port",
                port,
                "--state-file",
                str(tmp_path / "t.json"),
            ],
            tmp_path,
        )
        assert declined.returncode == 1
        assert "51" in declined.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.slow
def test_demo_plays_the_story_as_the_fixture_predicts(tmp_path: Path) -> None:
    done = run(["demo", "--pos-port", "0", "--issuer-ports", "0,0"], tmp_path, timeout=120, COLUMNS="200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every step answered as the demo fixture predicts" in done.stdout
    for expected in ("insufficient funds", "wrong PIN", "expired card", "lost card"):
        assert expected in done.stdout
    for expected in ("WeChat Pay QR sale 23.72", "Alipay code scanned, 50.00", "refund 30.01 (30.00 left)"):
        assert expected in done.stdout
    # the wallet orders cleared with the cards: 23.72 + 50.00 − 20.00
    assert re.search(r"wallet \(QR\) net of refunds\s*│\s*53\.72", done.stdout), done.stdout
    # the risk desk: one risk decline, one alert
    assert "sale on a card on the block list" in done.stdout and "sale at a watched terminal" in done.stdout


def test_bench_clearing_clears_a_generated_day_and_a_rerun_posts_nothing(tmp_path: Path) -> None:
    done = run(["bench", "clearing", "--transactions", "2000"], tmp_path, timeout=120, COLUMNS="200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 new postings" in done.stdout
