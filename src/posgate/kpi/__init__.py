"""Acquirer and partner-bank KPIs (issue 13, docs/kpi.md): exact definitions (`definitions`), the rollup
job (`rollup`), the pages of numbers (`queries`) and the history generator (`history`)."""
