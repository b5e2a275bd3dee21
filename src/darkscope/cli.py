"""The ``darkscope`` command: thin wrappers over the library, one subcommand per part.

Subcommands are imported lazily so ``darkscope --help`` stays instant and a part's heavy
dependencies load only when that part runs.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from darkscope import __version__
from darkscope.clikit import common, debug_enabled, reset
from darkscope.engines.cli import offer_engines
from darkscope.errors import DarkscopeError

# name -> "module:attribute"; each part owns its own command module.
COMMANDS: dict[str, str] = {
    "backscatter": "darkscope.backscatter.cli:backscatter",
    "crawl": "darkscope.darkweb.cli:crawl_command",
    "demo": "darkscope.demo:demo",
    "export": "darkscope.intel.cli:export",
    "hosts": "darkscope.patterns.cli:hosts",
    "ingest": "darkscope.packets.cli:ingest",
    "monitor": "darkscope.monitor.cli:monitor",
    "parse": "darkscope.darkweb.cli:parse_command",
    "ppml": "darkscope.ppml.cli:ppml",
    "query": "darkscope.query:query",
    "review": "darkscope.backscatter.cli:review",
    "rules": "darkscope.patterns.cli:rules",
    "serve": "darkscope.web.cli:serve",
    "simulate": "darkscope.simulate.cli:simulate",
    "topics": "darkscope.topics.cli:topics",
    "users": "darkscope.web.cli:users",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        offer_engines(cmd_name, command)   # --engine spark where a part's command has one
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="darkscope")
@common
def cli() -> None:
    """darkscope: machine-learning cyber-threat monitoring.

    Darknet captures to columnar tables, DDoS backscatter detection, scanner fingerprint
    mining, dark web market monitoring, and privacy-preserving learning across organizations.
    Run `darkscope COMMAND --help` for each part.
    """


def usage_error_line(exc: click.UsageError) -> str:
    """Click's three-line usage error (Usage, Try, Error) as the one line every error gets."""
    command = exc.ctx.command_path if exc.ctx else "darkscope"
    message = exc.format_message().rstrip(".")
    if (isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter)
            and exc.param is not None and exc.ctx is not None):
        # "Invalid value for 'X': File 'a' is a directory" -> "X: 'a' is a directory, not a file"
        detail = exc.message.rstrip(".")
        for kind in ("File", "Directory", "Path"):
            if detail.startswith(f"{kind} "):
                detail = detail[len(kind) + 1:]
        if detail.endswith("is a directory"):
            detail += ", not a file"
        elif detail.endswith("is a file"):
            detail += ", not a directory"
        message = f"{exc.param.get_error_hint(exc.ctx).replace(chr(39), '')}: {detail}"
    elif isinstance(exc, click.MissingParameter) and exc.param is not None:
        hint = getattr(exc.param, "help", None)
        if hint:
            message += f" ({hint.split('. ')[0].rstrip('.')})"
    return f"{command}: error: {message}; see '{command} --help'"


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and a non-zero exit."""
    reset()
    try:
        code = cli.main(args=argv, prog_name="darkscope", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("darkscope: interrupted", err=True)
        return 130
    except click.UsageError as exc:
        click.echo(usage_error_line(exc), err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except DarkscopeError as exc:
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"darkscope: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("darkscope: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so, show the traceback only when asked
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"darkscope: internal error: {type(exc).__name__}: {exc} "
                   "(run with --debug for the traceback)", err=True)
        return 70
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
