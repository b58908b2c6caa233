"""Risk control: rules as documents (`rules`), the names they may use (`vocabulary`), CEL expressions
(`expressions`), sliding-window aggregates (`aggregates`, pure; kept in the store by `counters_store`), the
terminal's distance from its registered shop (`geo`), one request's facts (`facts`), the pure inline decision
(`decision`) and the shell the host calls (`engine`)."""
