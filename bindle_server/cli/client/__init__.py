"""`bindle`: push, fetch, search and sign bindles; the reference CLI's commands and flags.

Every command goes through the `bindle_server.client` library. Results go to stdout;
progress and notes go to stderr (rich bars on a terminal, plain lines otherwise); an
error is one red "ErrorName: message" line and a non-zero exit (`--debug` adds the
traceback).

application.py holds the typer app, its global options and `main()`, and registers the
commands of fetching.py, pushing.py, search.py and keys.py; session.py is what the global
options build, options.py the arguments several commands share, output.py the
TOML/JSON printer.
"""

from bindle_server.cli.client.application import app, main

__all__ = ["app", "main"]
