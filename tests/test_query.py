"""``darkscope query``: the README's and packets.md's queries run after setup and give the
same numbers as computing them from the packet table directly."""

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from darkscope import cli, packets

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def packet_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("query")
    assert cli.main(["simulate", "--scenario", "demo", "--duration", "10m", "--scale", "0.2",
                     "--seed", "3", "-o", str(root / "day.pcap")]) == 0
    assert cli.main(["ingest", str(root / "day.pcap"), "-o", str(root / "packets"),
                     "--no-progress"]) == 0
    return root


def darkscope_query_commands(markdown: Path) -> list[str]:
    """Every ``darkscope query ...`` command (with its continuation lines) in a bash block."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown.read_text(), re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("darkscope query"):
                end = i
                while "\n".join(lines[i:end + 1]).count('"') % 2:  # the SQL spans lines
                    end += 1
                commands.append("\n".join(lines[i:end + 1]))
    return commands


def expected_syn_hosts_by_port(root: Path) -> dict[int, int]:
    table = packets.read(root / "day.pcap").select(["src", "dport", "tcp_flags"])
    syn = np.asarray(table["tcp_flags"].fill_null(0)) == 2
    pairs = {(int(d), int(s)) for d, s in zip(np.asarray(table["dport"].filter(syn)),
                                              np.asarray(table["src"].filter(syn)), strict=True)}
    return dict(Counter(port for port, _ in pairs))


@pytest.mark.parametrize("doc", ["README.md", "docs/packets.md"])
def test_documented_queries_run_as_written(packet_dir, doc):
    commands = darkscope_query_commands(REPO / doc)
    assert commands, f"no darkscope query example in {doc}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        command = re.sub(r"#.*$", "", command, flags=re.M)  # trailing comments
        done = subprocess.run(["bash", "-c", command + " --format csv"], cwd=packet_dir, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert rows, command
        if "dport" in rows[0]:
            expected = expected_syn_hosts_by_port(packet_dir)
            top = sorted(expected.values(), reverse=True)[:len(rows)]
            assert [int(r["hosts"]) for r in rows] == top
            assert all(expected[int(r["dport"])] == int(r["hosts"]) for r in rows)
        if "hour" in rows[0]:
            total = packets.read(packet_dir / "day.pcap").num_rows
            assert sum(int(r["packets"]) for r in rows) == total


def test_output_formats_hold_the_same_rows(packet_dir, tmp_path, capsys):
    sql = "SELECT src, count(*) AS n FROM p GROUP BY src ORDER BY n DESC, src"
    table = ["--table", f"p={packet_dir / 'packets'}"]
    assert cli.main(["query", *table, sql, "-o", str(tmp_path / "r.parquet")]) == 0
    parquet = pq.read_table(tmp_path / "r.parquet").to_pylist()
    capsys.readouterr()
    assert cli.main(["query", *table, sql, "--format", "jsonl"]) == 0
    jsonl = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert jsonl == parquet
    assert cli.main(["query", *table, sql + " LIMIT 3"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["src", "n"] and text[-1] == "(3 rows)"
    assert text[1].split() == [str(parquet[0]["src"]), str(parquet[0]["n"])]


@pytest.mark.parametrize(("args", "message"), [
    (["SELECT * FROM nowhere"], "query failed: Catalog Error"),
    (["--table", "p=missing/", "SELECT 1"], "missing: no such file or directory"),
    (["--table", "1p=x", "SELECT 1"], "expected NAME=PATH"),
    (["SELECT 1", "--format", "parquet"], "give -o FILE.parquet"),
])
def test_mistakes_get_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["query", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
