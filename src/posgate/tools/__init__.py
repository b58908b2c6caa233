"""Tools used by commands and tests, never by the domains: the card-data scanner (`card_scan`)."""
