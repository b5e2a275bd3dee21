"""``darkscope query``: SQL over any output darkscope writes, with the DuckDB that setup installs.

Every table darkscope writes is Parquet, CSV or JSON Lines so that DuckDB, pandas and jq read it
directly; this command only saves a newcomer from installing the DuckDB shell separately.
``--table NAME=PATH`` names an output (a file or an hour-partitioned directory) so queries need
not spell out ``read_parquet(..., hive_partitioning=true)``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pyarrow as pa

from darkscope.clikit import common, format_option, output_option, overwrite_option
from darkscope.errors import DarkscopeError, UsageError
from darkscope.io import dump_table, write_table

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_sql(path: str | Path) -> str:
    """The DuckDB table function that reads ``path`` (a file, or a directory of Parquet parts)."""
    path = Path(path)
    if path.is_dir():
        return f"read_parquet({_quoted(str(path / '**' / '*.parquet'))}, hive_partitioning=true)"
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return f"read_csv({_quoted(str(path))})"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return f"read_json({_quoted(str(path))}, format='newline_delimited')"
    return f"read_parquet({_quoted(str(path))})"


def parse_table_option(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not _NAME.match(name) or not path:
        raise UsageError(f"--table {value!r}: expected NAME=PATH, NAME a plain SQL identifier")
    return name, path


def run_query(sql: str, tables: dict[str, str | Path] | None = None) -> pa.Table:
    """Run ``sql`` in a fresh in-memory DuckDB, with each of ``tables`` as a view."""
    try:
        import duckdb
    except ImportError as exc:  # installed by ./run setup; a minimal install may lack it
        raise DarkscopeError(
            "darkscope query needs DuckDB: pip install 'darkscope[query]'") from exc
    connection = duckdb.connect()
    try:
        for name, path in (tables or {}).items():
            connection.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {source_sql(path)}')
        relation = connection.sql(sql)
        if relation is None:
            raise UsageError("the query returned no rows or columns (darkscope query runs SELECTs)")
        return relation.to_arrow_table()
    except duckdb.Error as exc:
        message = " ".join(str(exc).split())
        raise UsageError(f"query failed: {message}") from exc
    finally:
        connection.close()


def _text(table: pa.Table) -> str:
    """An aligned table for a terminal; every row (a LIMIT keeps it short)."""
    names = table.column_names
    rows = [["" if v is None else (v.hex() if isinstance(v, bytes) else str(v)) for v in row]
            for row in zip(*(column.to_pylist() for column in table.columns), strict=True)]
    widths = [max([len(name)] + [len(row[i]) for row in rows]) for i, name in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(lines)


@click.command("query")
@click.argument("sql")
@click.option("--table", "tables", multiple=True, metavar="NAME=PATH",
              help="Make PATH (a file, or a directory darkscope wrote) queryable as NAME; "
                   "repeatable.")
@output_option(required=False, help="Write the result here (.parquet, .csv, .jsonl) instead of "
               "printing it.")
@format_option
@overwrite_option
@common
def query(sql: str, tables: tuple[str, ...], output: str | None, fmt: str | None,
          overwrite: bool) -> None:
    """Run a DuckDB SQL query over darkscope's outputs.

    \b
    darkscope query --table p=packets/ \\
        "SELECT dport, count(DISTINCT src) AS hosts FROM p WHERE tcp_flags = 2
         GROUP BY dport ORDER BY hosts DESC LIMIT 10"

    Any DuckDB table function works too, e.g. FROM 'rules.csv' or
    read_parquet('packets/**/*.parquet', hive_partitioning=true). The result prints as an
    aligned table, or with --format csv|jsonl as that format on stdout, or goes to -o.
    """
    views = dict(parse_table_option(value) for value in tables)
    result = run_query(sql, views)
    if output:
        write_table(result, output, fmt, overwrite=overwrite)
        rows = "row" if result.num_rows == 1 else "rows"
        click.echo(f"{result.num_rows} {rows} -> {output}", err=True)
    elif fmt == "parquet":
        raise UsageError("Parquet is binary: give -o FILE.parquet")
    elif fmt:
        dump_table(result, sys.stdout.buffer, fmt)
    else:
        click.echo(_text(result))
