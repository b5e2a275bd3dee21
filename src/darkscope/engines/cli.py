"""``--engine``, ``--master`` and ``--conf`` on the parts' commands that have a Spark engine.

The parts know nothing of engines; the top-level CLI hands each part's command group here as
it loads it, and every command listed in :data:`ON_SPARK` gets the three options. With
``--engine spark`` its arguments go to the Spark implementation instead of the part's own.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from darkscope.errors import UsageError

# (group, command) -> "module:function" taking the command's arguments plus master and conf
ON_SPARK: dict[tuple[str, str], str] = {
    ("backscatter", "train"): "darkscope.engines.spark.commands:train",
    ("backscatter", "detect"): "darkscope.engines.spark.commands:detect",
    ("backscatter", "victims"): "darkscope.engines.spark.commands:victims",
    ("rules", "mine"): "darkscope.engines.spark.commands:rules_mine",
    ("rules", "timeline"): "darkscope.engines.spark.commands:rules_timeline",
    ("hosts", "attribute"): "darkscope.engines.spark.commands:hosts_attribute",
}
_ENGINE_HELP = ("Where to compute: local (this machine), or spark (an Apache Spark cluster; "
                "INPUTS are then packet tables from darkscope ingest, on local disks, "
                "hdfs:// or s3a://).")


def offer_engines(name: str, group: click.Command) -> None:
    """Give the commands of ``group`` (the part called ``name``) that have a Spark engine
    their engine options (once, however often the group is loaded)."""
    if not isinstance(group, click.Group):
        return
    for (group_name, command_name), target in ON_SPARK.items():
        command = group.commands.get(command_name) if group_name == name else None
        if command is not None and not getattr(command, "darkscope_engines", False):
            _offer(command, target)


def _offer(command: click.Command, target: str) -> None:
    local = command.callback
    at = next((i for i, p in enumerate(command.params) if p.name in ("progress", "debug")),
              len(command.params))
    command.params[at:at] = [
        click.Option(["--engine"], type=click.Choice(["local", "spark"]), default="local",
                     show_default=True, help=_ENGINE_HELP),
        click.Option(["--master"], metavar="URL",
                     help="Spark master (local[4], spark://host:7077, yarn); default: the "
                          "one spark-submit sets, else local[*]."),
        click.Option(["--conf"], metavar="KEY=VALUE", multiple=True,
                     help="Spark configuration, as spark-submit takes it; repeatable."),
    ]

    def callback(engine: str, master: str | None, conf: tuple[str, ...], **kwargs: Any) -> Any:
        if engine == "spark":
            module, function = target.split(":")
            return getattr(importlib.import_module(module), function)(
                master=master, conf=conf, **kwargs)
        if master or conf:
            raise UsageError("--master and --conf configure Spark: add --engine spark")
        return local(**kwargs)

    command.callback = callback
    command.darkscope_engines = True
