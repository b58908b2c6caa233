"""Risk control: rules as documents (`rules`), the names they may use (`vocabulary`), CEL expressions
(`expressions`), sliding-window aggregates (`aggregates`, kept in the store by `store.risk_counters`), the
terminal's distance from its registered shop (`geo`) and the pure inline decision (`decision`)."""
