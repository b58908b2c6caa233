"""Wallet (QR) payments beside cards: the EMVCo merchant-presented QR codec, payment codes and their routing,
the providers' signature schemes, the provider adapters (acquirer side) and the provider simulators.

The pure core (`emvqr`, `codes`, `wechatpay`, `alipay`, `unionpay`, `bills`, `sim.book`) imports no asyncio
and no HTTP framework and never reads the clock (`now` is a parameter); the adapters (`adapters/`) and the
simulators' HTTP apps (`sim/`) are the shells.
"""
