"""The options of `bindle-server`, built from the fields of `Settings`.

Each setting is declared once, in `bindle_server.config.Settings`: its description is the
option's help, its variables and default are shown beside it, and its `CommandLine`
marker adds the short name and the negative flag. A command names the settings it takes
with `@settings_options(...)` and receives them as one `Settings`.

typer builds a command's options from the signature of its function, so the decorator
writes that signature: the command's own parameters, then one keyword parameter per
setting. Settings given to `bindle-server` itself (before the command's name) count for
the command too, unless the command's own options say otherwise.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, cast, get_args, get_origin

import annotated_types
import typer
from pydantic import ValidationError

from bindle_server.config import (
    CommandLine,
    Settings,
    command_line,
    environment_names,
    is_duration,
)
from bindle_server.model.duration import format_duration

Command = Callable[..., None]

# Every setting that has an option, in the order of Settings: what `serve` takes.
SERVE = tuple(name for name in Settings.model_fields if command_line(name) is not None)
# Settings that only an environment variable sets.
ENVIRONMENT_ONLY = tuple(name for name in Settings.model_fields if command_line(name) is None)
# Where the invoices, parcels and index are: what the maintenance commands take.
STORE = ("directory", "storage", "index")

# The one option that is not a setting but several commands take.
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress [default: when standard error is a terminal]",
        show_default=False,
    ),
]

# Settings given as options so far in this invocation (the group's, then the command's),
# kept in the context's `meta`, which nested contexts share.
_GIVEN = "bindle_server.given_options"
_METAVARS: dict[type, str] = {Path: "FILE", int: "INTEGER", str: "TEXT"}


def option_name(field: str) -> str:
    """The long option of a setting: `max_parcel_bytes` -> `--max-parcel-bytes`."""
    return "--" + field.replace("_", "-")


def settings_options(*fields: str) -> Callable[[Command], Command]:
    """Give a command one option per setting in `fields`, and call it with `settings=`.

    The command declares `settings: Settings` (and `ctx: typer.Context` if it needs the
    context); its other parameters stay typer parameters as usual.
    """
    options = [_parameter(field) for field in fields]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in ("ctx", "settings")]
        passes_context = "ctx" in signature.parameters

        @functools.wraps(command)
        def run(ctx: typer.Context, **values: Any) -> None:
            given = dict(ctx.meta.get(_GIVEN, {}))
            for field in fields:
                value = values.pop(field)
                if value is not None and value != []:  # a repeatable option not given: []
                    given[field] = value
            ctx.meta[_GIVEN] = given
            if passes_context:
                values["ctx"] = ctx
            command(settings=settings_from(given), **values)

        context = inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
        )
        parameters = [context, *own, *options]
        # typer reads the options from these two, not from the wrapped command's.
        run.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=None
        )
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


def show_progress(progress: bool | None) -> bool:
    """Whether to show progress: as --progress/--no-progress says, else on a terminal."""
    return progress if progress is not None else sys.stderr.isatty()


def given_options(ctx: typer.Context) -> dict[str, Any]:
    """The settings given as command-line options in this invocation, by field name."""
    return dict(ctx.meta.get(_GIVEN, {}))


def settings_from(given: Mapping[str, Any]) -> Settings:
    """Settings from the environment overridden by `given`; BadParameter, in one line naming
    each option or variable at fault, when a value is not valid."""
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            # A check across settings (a model validator) has no location of its own.
            if error["loc"]:
                message = f"{_origin(_field_of(str(error['loc'][0])), given)}: {message}"
            problems.append(message)
        raise typer.BadParameter("; ".join(problems)) from None


def source(field: str, given: Mapping[str, object]) -> str:
    """Where a setting's value comes from: an option, a variable, or its default."""
    if field in given:
        return f"command-line option {option_name(field)}"
    variable = variable_set(field)
    return f"environment variable {variable}" if variable else "default"


def variable_set(field: str) -> str | None:
    """The variable a setting is read from in this environment, if any is set.

    pydantic-settings matches the names regardless of case and takes the first one set.
    """
    present = {name.upper() for name in os.environ}
    return next((name for name in environment_names(field) if name in present), None)


def default_text(field: str) -> str | None:
    """A setting's default as `--help` shows it (None when there is nothing to show)."""
    spelled = command_line(field)
    if spelled is not None and spelled.default is not None:
        return spelled.default
    value = Settings.model_fields[field].get_default(call_default_factory=True)
    if value is None or value == []:
        return None
    if isinstance(value, bool):
        if spelled is None:
            return str(value).lower()
        return option_name(field) if value else _negative(field, spelled)
    if is_duration(field):
        return format_duration(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def help_text(field: str) -> str:
    """A setting's description, variables and default: its help as an option."""
    variables = " or ".join(environment_names(field))
    default = default_text(field)
    shown = f" [default: {default}]" if default is not None else ""
    return f"{Settings.model_fields[field].description} [env: {variables}]{shown}"


def _origin(field: str, given: Mapping[str, object]) -> str:
    if field in given:
        return option_name(field)
    return variable_set(field) or field


def _field_of(location: str) -> str:
    """The field an error's location names (pydantic may name a variable instead)."""
    for field in Settings.model_fields:
        if location == field or location in environment_names(field):
            return field
    return location


def _negative(field: str, spelled: CommandLine) -> str:
    return spelled.off or "--no-" + field.replace("_", "-")


def _parameter(field: str) -> inspect.Parameter:
    """The keyword parameter (with its typer option) that gives the setting `field`."""
    spelled = command_line(field)
    if spelled is None:
        raise ValueError(f"setting {field!r} has no command-line option (no CommandLine)")
    kind = _option_type(field)
    names = [option_name(field)]
    if kind is bool:
        names = [f"{names[0]}/{_negative(field, spelled)}"]
    if spelled.short:
        names.append(spelled.short)
    extra: dict[str, Any] = {}
    if kind is not bool:
        extra["metavar"] = spelled.metavar or (
            "DURATION" if is_duration(field) else _METAVARS.get(kind, "TEXT")
        )
    if kind is int:
        extra["min"] = _minimum(field)
    option = typer.Option(*names, help=help_text(field), show_default=False, **extra)
    return inspect.Parameter(
        field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, option],
    )


def _option_type(field: str) -> type:
    """The type the option parses: durations and other text reach Settings as text."""
    annotation = Settings.model_fields[field].annotation
    if get_origin(annotation) in (Union, UnionType):  # X | None
        annotation = next(arg for arg in get_args(annotation) if arg is not NoneType)
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is list:  # a repeatable option, e.g. --webhook
        return cast(type, list[str])
    return cast(type, annotation) if annotation in (bool, int, Path) else str


def _minimum(field: str) -> int | None:
    for item in Settings.model_fields[field].metadata:
        if isinstance(item, annotated_types.Gt) and isinstance(item.gt, int):
            return item.gt + 1
        if isinstance(item, annotated_types.Ge) and isinstance(item.ge, int):
            return item.ge
    return None
