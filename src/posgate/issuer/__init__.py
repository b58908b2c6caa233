"""The issuer simulator: simulated banks with BIN ranges, accounts, holds and authorization rules, served
over the network dialect (`shared/spec/network-8583.md`) so the acquirer host has someone to talk to.

Pure core: `rules` (decisions), `messages` (reading requests, writing responses), `card_checks` (CVV, PIN,
ARQC/ARPC). Store side: `books` (cards, accounts, authorizations, atomic money moves) and `authorizer`
(one request = one unit of work). Shell: `server.IssuerSimulator` (asyncio TCP, fault injection).
"""

from posgate.issuer.rules import (
    AccountSnapshot,
    AuthRequest,
    CardSnapshot,
    Check,
    Decision,
    Effect,
    Kind,
    decide,
)
from posgate.issuer.server import FAULTS, IssuerSimulator

__all__ = [
    "FAULTS",
    "AccountSnapshot",
    "AuthRequest",
    "CardSnapshot",
    "Check",
    "Decision",
    "Effect",
    "IssuerSimulator",
    "Kind",
    "decide",
]
