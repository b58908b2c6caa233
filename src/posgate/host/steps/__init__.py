"""The host's small steps. Each says what it needs, what it provides, which declines it can produce and
what it compensates; `host/pipeline.py` lists them per message kind."""
