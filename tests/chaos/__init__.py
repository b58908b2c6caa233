"""Fault injection (issue 9, item 5): terminals load a stack of real processes while the harness kills the
host, the issuer simulator and its own PostgreSQL server with SIGKILL and delays, drops and cuts the issuer
links through a TCP proxy it controls; afterwards it checks the money invariants and scans everything the run
left on disk for clear card data. `make chaos` runs the long version, `tests/chaos/test_chaos.py` the short
one (docs/testing.md, "Fault injection")."""
