"""`python -m bindle_server.cli.client` -> the `bindle` command."""

from bindle_server.cli.client.application import main

main()
