"""`bindle-server config`, and the `--help` epilog of the settings that have no option:
every setting can be found, with where its value comes from."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import typer

from bindle_server.cli.server.options import (
    ENVIRONMENT_ONLY,
    SERVE,
    default_text,
    given_options,
    settings_options,
    source,
)
from bindle_server.config import Settings, command_line, environment_names, is_duration
from bindle_server.model.duration import format_duration
from bindle_server.search.registry import redact

# Settings whose unset value stands for another one, and what it stands for.
_RESOLVED: dict[str, Callable[[Settings], object]] = {
    "storage": lambda settings: settings.storage_url,
    "signing_keys": lambda settings: settings.signing_keys_path,
    "tokens_file": lambda settings: settings.tokens_path,
}
_WIDTH = 76  # click indents the epilog by two columns


@settings_options(*SERVE)
def config(ctx: typer.Context, settings: Settings) -> None:
    """Print every setting in effect, where it comes from and its value.

    Takes the options of `serve`, and reads the same environment variables; a source is a
    command-line option, an environment variable or the default. Passwords in URLs are
    shown as ***.
    """
    given = given_options(ctx)
    rows = [(name, source(name, given), _value(settings, name)) for name in Settings.model_fields]
    rows.insert(0, ("SETTING", "SOURCE", "VALUE"))
    name_width = max(len(row[0]) for row in rows)
    source_width = max(len(row[1]) for row in rows)
    for name, origin, value in rows:
        typer.echo(f"{name:<{name_width}}  {origin:<{source_width}}  {value}".rstrip())


def environment_epilog() -> str:
    """The `--help` text that lists the settings without an option, and `config`."""
    # "\b" keeps click from rewrapping a paragraph: the lines are wrapped here.
    lines = ["\b", "Settings read only from environment variables:"]
    for name in ENVIRONMENT_ONLY:
        text = f"{Settings.model_fields[name].description} [default: {default_text(name)}]"
        variable = " or ".join(environment_names(name))
        lines.append(f"  {variable}")
        lines.extend(textwrap.wrap(text, _WIDTH, initial_indent=" " * 4, subsequent_indent=" " * 4))
    lines.append("  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3,")
    lines.append("  and the AWS SDK's other variables")
    lines.append("    Credentials, region and endpoint of s3:// storage")
    closing = (
        "Every option above can be set by its variable, too. `bindle-server config` prints "
        "every setting in effect, where it comes from and its value."
    )
    return "\n".join(lines) + "\n\n" + closing


def _value(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    if value is None and name in _RESOLVED:
        value = _RESOLVED[name](settings)
    if value is None:
        spelled = command_line(name)
        return f"unset ({spelled.default})" if spelled and spelled.default else "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format_duration(value) if is_duration(name) else f"{value:g}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):  # --upstream, --webhook: each URL may hold a password
        return ", ".join(redact(str(item)) for item in value) or "none"
    return redact(str(value))
