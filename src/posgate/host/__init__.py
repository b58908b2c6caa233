"""The acquirer host: the POS-facing asyncio server, the per-message pipelines of small steps, issuer links
with sign-on/echo/reconnect, and the store-and-forward reversal queue."""
