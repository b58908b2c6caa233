"""Operations endpoints of a host process: `/healthz`, `/readyz` and Prometheus `/metrics` on their own
HTTP port (`ops_host`, `ops_port`), with or without the console (docs/operations.md)."""
