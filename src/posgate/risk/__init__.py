"""Risk control: rules as documents (`rules`), the names they may use (`vocabulary`), CEL expressions
(`expressions`), sliding-window aggregates (`aggregates`, pure; kept in the store by `counters_store`), the
terminal's distance from its registered shop (`geo`) and the pure inline decision (`decision`)."""
