"""Clearing and settlement: the clearing run, fees, the double-entry ledger, payouts, reconciliation and
reports (docs/settlement.md). The public face, by module:

- `rates.load_rates(override, data_dir) -> Rates` — the parameters document, validated;
- `clearing.run_clearing(store, date, rates, timezone, now=None, allow_open_day=False) -> ClearingResult`;
- `payouts.build_t1_payouts(store, date, data_dir)`, `payouts.request_d0(store, mid, amount_fen, rates,
  timezone, data_dir)`, `payouts.import_confirmation(store, path)`, `payouts.simulate_bank(file, out)`;
- `reconcile.reconcile_issuer_file(store, path, date, timezone, cut_off)`,
  `reconcile.terminal_batches(session, date)`;
- `reports.merchant_statement(session, mid, date)`, `reports.fee_income(session, date)`,
  `reports.outstanding_payables(session)` — rows for the CLI and the console;
- `ledger_store.balances(session, prefix, through)`, `trial_balance`, `verify_balances`, `entry_lines`;
- `factory.DayBuilder` — days of transactions (and the issuer's books) for tests and demos;
- `bench.run_clearing_bench(n)` — `posgate bench clearing`.

Depends on `store` only (and `errors`); the shells are `posgate.cli.settlement` and the console.
"""
