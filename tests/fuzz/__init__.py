"""Fuzz targets: one module per target, each with `one_input(data: bytes) -> None` (see `_harness`)."""
