"""The `posgate` command line (Typer), one module per command group.

`common` (shared options, `build_settings`, `run`) is imported by every group and imports none; `root` mounts
the groups: `serve` (up, host, issuer, console), `terminal` and `terminal_wallet` (the POS terminal
simulator), `merchants`, `keys`, `settlement` (clearing, settlement, reconcile, issuer clearing-file),
`risk`, `wallet`, `kpi` (kpi, seed), `decode`, `demo`, `bench`, `txn`. The console script is
`posgate.cli:main`.
"""

from posgate.cli.root import app, main

__all__ = ["app", "main"]
