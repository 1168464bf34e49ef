"""`python -m bindle_server`: the server command line."""

from bindle_server.cli.server import main

main()
