"""The wallet part of `posgate demo` (issue 12): at the demo terminal, a WeChat Pay–style
merchant-presented QR sale paid by the simulated customer `demo`, then an Alipay–style payment code
scanned, refunded in part, and a refund above what is left refused. Uses the running node's order service
when `posgate up` started one; else starts the three simulators (any free ports) and an order service of
its own for the story, which finds the outcomes by querying the providers (no console to receive their
notifications)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from posgate.bootstrap.stack import Running
from posgate.config import Settings
from posgate.money import yuan
from posgate.terminal.state import DEMO_TID
from posgate.wallets import customer
from posgate.wallets.codes import PROVIDERS
from posgate.wallets.orders import RefundRefused
from posgate.wallets.runtime import WalletRuntime, register_demo_accounts

NO_CONSOLE = "http://127.0.0.1:9"  # nothing listens: the simulators' notifications fail, queries find the end


@dataclass(frozen=True)
class WalletOutcome:
    title: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


async def _until_final(runtime: WalletRuntime, order_id: str, timeout_s: float = 15.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout_s
    state = runtime.orders.get(order_id).state
    while state not in ("paid", "closed", "failed") and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.3)
        state = (await runtime.orders.refresh(order_id)).state
    return state


async def play_wallets(running: Running, settings: Settings) -> list[WalletOutcome]:
    """The story's four wallet steps (see the module docstring)."""
    sims, runtime = running.wallet_sims, running.wallets
    own = runtime is None
    if own:
        from posgate.wallets.sim import WalletSimulators

        sims = WalletSimulators(
            host="127.0.0.1", ports=dict.fromkeys(PROVIDERS, 0), key_dir=settings.data_dir / "wallet-sim"
        )
        await sims.start()
        await register_demo_accounts(running.handle, sims, NO_CONSOLE, actor="posgate demo")
        runtime = WalletRuntime(running.handle, sims.urls(), NO_CONSOLE, settings.wallet_timeout_s)
    assert runtime is not None and sims is not None
    urls = sims.urls()
    outcomes: list[WalletOutcome] = []
    try:
        merchant = runtime.merchant(DEMO_TID)
        order = await runtime.orders.create_qr(merchant, DEMO_TID, 2372, "wechat")
        if order.qr_payload:
            await customer.pay_payload(order.qr_payload, "demo", urls)
        state = await _until_final(runtime, order.order_id)
        outcomes.append(WalletOutcome("WeChat Pay QR sale 23.72 (merchant-presented)", "paid", state))
        code = await customer.payment_code("alipay", "demo", urls)
        scanned = await runtime.orders.scan(merchant, DEMO_TID, code, 5000)
        outcomes.append(
            WalletOutcome("Alipay code scanned, 50.00 (customer-presented)", "paid", scanned.state)
        )
        try:
            refund = await runtime.orders.refund(scanned.order_id, 2000)
            got = f"{refund.state}, {yuan(refund.refunded_fen)} refunded"
        except RefundRefused as exc:
            got = f"refused: {exc}"
        outcomes.append(WalletOutcome("refund 20.00 of the Alipay payment", "succeeded, 20.00 refunded", got))
        try:
            await runtime.orders.refund(scanned.order_id, 3001)
            got = "taken"
        except RefundRefused:
            got = "refused"
        outcomes.append(WalletOutcome("refund 30.01 (30.00 left)", "refused", got))
    finally:
        if own:
            await runtime.stop()
            await sims.stop()
    return outcomes
