"""`bindle-server`: serve the Bindle v1 API, or maintain a data directory and its keys.

app.py holds the typer app, its own options (those of `serve`) and `main()`, and registers
the commands of serve.py, configuration.py (`config`, and the `--help` list of settings
read only from the environment), maintenance.py (`reindex`, `fsck`), lifecycle.py
(`purge`, `gc`), migration.py (`migrate`, `migrate-storage`) and credentials.py (`keys`,
`token`). options.py builds every option from the fields of `bindle_server.config.Settings`;
listen.py binds the socket and runs uvicorn on it.
"""

from bindle_server.cli.server.app import app, main

__all__ = ["app", "main"]
