"""Options shared by every ``darkscope`` command, so flags mean the same thing everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from darkscope import progress

F = TypeVar("F", bound=Callable[..., Any])

_state = {"debug": False}


def debug_enabled() -> bool:
    return _state["debug"]


def reset() -> None:
    """Forget flags of a previous invocation (``main`` can be called more than once)."""
    _state["debug"] = False
    progress.settings.enabled = None


def _set_progress(_ctx: click.Context, _param: click.Parameter, value: bool | None) -> None:
    if value is not None:
        progress.settings.enabled = value


def _set_debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _state["debug"] = True


progress_option = click.option(
    "--progress/--no-progress", default=None, expose_value=False, callback=_set_progress,
    is_eager=True, help="Show a progress bar (default: only when stderr is a terminal).")
debug_option = click.option(
    "--debug", is_flag=True, expose_value=False, callback=_set_debug, is_eager=True,
    help="Show the full traceback on errors.")
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace the output if it exists.")
seed_option = click.option(
    "--seed", type=click.IntRange(0), default=0, show_default=True,
    help="Random seed; same seed, same output.")
format_option = click.option(
    "--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl"]), default=None,
    help="Output format (default: from the file suffix, else Parquet).")


def common(func: F) -> F:
    """Add ``--progress/--no-progress`` and ``--debug`` to a command."""
    return progress_option(debug_option(func))


def output_option(required: bool = True, help: str = "Output path.",
                  **extra: Any) -> Callable[[F], F]:
    return click.option("-o", "--output", type=click.Path(), required=required, help=help,
                        **extra)
