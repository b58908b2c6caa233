"""The REST API (FastAPI, OpenAPI at /docs) and the web console (server-rendered Jinja2 pages, every asset
served locally) over the onboarding workflow, merchants, terminals and transactions.

`app.create_app(handle, settings)` builds the application; `operations` holds what the API routes and the
console pages share; `users` and `sessions` own accounts, API keys, console sessions and the login rate
limit; `roles` says which role may do what.
"""
