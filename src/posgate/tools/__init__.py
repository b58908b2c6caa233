"""Tools: what commands and tests use around the product, never the domains nor the composition root.

- the demo: `demo` (`posgate demo`, the story), `demo_onboarding` (its onboarding part, through the API),
  `demo_wallets` (its QR wallet part);
- benchmarks: `bench_auth` (`posgate bench auth`) with `bench_report` (its figures, their rendering and the
  comparison of two runs), `bench_clearing` (`posgate bench clearing`);
- test data: `clearing_day_factory` (days of transactions written straight into a store),
  `onboarding_data` (valid application forms and photos), `card_scan` (clear card data in bytes, files and
  databases).
"""
