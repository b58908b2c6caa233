"""The composition root: the one place that builds the running system from `Settings`.

- `store` — `open_store`: engine, migrations, master key, the demo fixture on an empty store, configured
  issuers (a `store.runtime.StoreHandle`);
- `host` — `start_host`: issuer links, store-and-forward, in-doubt recovery, risk engine, POS server;
- `stack` — `start_all` / `serve_forever`: the host, the issuer simulators, the console (API), the wallet
  order service and simulators, the master-key watch, as `posgate up`, `host`, `issuer`, `console` run them;
- `keyring_watch` — reloads the master key file when another process adds a version.

Only the faces (`cli`) and the tools import it; nothing here is imported by a domain.
"""
