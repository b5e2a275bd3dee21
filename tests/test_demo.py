"""The demo shows all five parts on built-in data, keeps its outputs, and says what it found."""

import json
import re
import time
from pathlib import Path

import pyarrow.parquet as pq

from darkscope.cli import main


def test_demo_runs_every_part_and_keeps_its_outputs(tmp_path: Path, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    assert main(["demo", "--no-progress"]) == 0
    seconds = time.monotonic() - started
    out = capsys.readouterr().out
    kept = tmp_path / "darkscope-demo"  # the default folder, still there afterwards
    assert f"every output is in {kept}" in out
    assert seconds < 300, f"the demo took {seconds:.0f} s"

    # 1-2: ingest and simulate
    assert "896 packets from 60 sources" in out
    assert "75.136.225.254:21     396 SYN-ACK" in out
    assert pq.read_metadata(kept / "packets.parquet").num_rows == 896
    truth = pq.read_table(kept / "truth.parquet")
    assert f"{truth.num_rows:,} hosts" in out
    # 3: backscatter, scored against the held-out truth
    f1 = float(re.search(r"DDoS  precision \S+  recall \S+  F1 (\S+)", out).group(1))
    assert f1 > 0.95
    # 4: the published Mirai rules with their planted Mirai shares
    block = out.split("the published Mirai rules, found again:\n")[1]
    found = dict(re.findall(r"^  \d{4}-\d\d-\d\d  (.+?)\s+lift .*Mirai\s+(\d+)%$", block,
                            re.MULTILINE))
    assert abs(int(found["win: {1320, 2376} -> {792}"]) - 90) <= 8, found
    assert abs(int(found["{dport=2323} -> {dport=23}"]) - 90) <= 5, found
    assert (kept / "mirai-timeline.png").stat().st_size > 10_000
    assert "<img" in (kept / "mirai-timeline.html").read_text()
    # 5: the crawl through the loopback proxy got every listing; topics with words and products
    listings = (kept / "market-crawl" / "listings.jsonl").read_text().splitlines()
    assert len(listings) == 48 and "proxy socks5h://127.0.0.1:" in out
    topics = json.loads((kept / "market-topics" / "topics.json").read_text())["topics"]
    assert len(topics) == 4
    for topic in topics:
        assert ", ".join(w for w, _ in topic["words"][:6]) in out
        assert f"e.g. {topic['products'][0]['title']}" in out
    # 6: PP-ELM, every role a process: the encrypted model predicts exactly like plaintext
    assert "(identical predictions, 128-bit security" in out
    plain, private = re.search(r"plaintext ELM (\S+), encrypted multi-party ELM (\S+)",
                               out).groups()
    assert plain == private and float(plain) > 0.6
