"""posgate — an open-source bank-card acquiring platform (POS 8583 host, issuer and terminal simulators)."""

__version__ = "0.1.0"
