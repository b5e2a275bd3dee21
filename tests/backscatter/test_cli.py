from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from darkscope.backscatter.features import FeatureDefinition
from darkscope.cli import main

COLUMNS = ["src", "window_start", "window_end", "packets", *FeatureDefinition().names,
           "verdict", "decided_by", "confidence", "context_packets", "src6"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_detect_review_evaluate(sim_train, sim_heldout, tmp_path: Path, capsys) -> None:
    store = tmp_path / "review.db"
    model = tmp_path / "model"
    code, out, _ = run(capsys, "backscatter", "train", sim_train.table, "--truth",
                       sim_train.truth, "--expert-oracle", "--expert-budget", 50, "--store",
                       store, "-o", model, "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["answered_by_oracle"] == min(50, summary["sent_to_experts"])
    assert summary["telescope"] == "198.51.0.0/16"

    verdicts = tmp_path / "verdicts.parquet"
    code, out, err = run(capsys, "backscatter", "detect", sim_heldout.capture, "--model", model,
                         "--store", store, "-o", verdicts, "--victims",
                         tmp_path / "victims.parquet")
    assert code == 0, err
    table = pq.read_table(verdicts)
    assert table.column_names == COLUMNS
    assert set(table["verdict"].to_pylist()) <= {"ddos", "not_ddos", "needs_review"}
    waiting = table["verdict"].to_pylist().count("needs_review")
    assert f"{waiting:,} needs_review ({waiting:,} queued" in out
    assert pq.read_table(tmp_path / "victims.parquet").num_rows > 50

    code, out, _ = run(capsys, "review", "list", "--store", store, "--limit", 1000)
    # training queued what the oracle's budget left unanswered; detection queued the rest
    assert code == 0 and len(out.splitlines()) == waiting + summary["queued"] and waiting > 0
    host = out.split()[0]
    code, out, _ = run(capsys, "review", "label", host, "--as", "ddos", "--note", "checked",
                       "--who", "alice", "--store", store)
    assert code == 0 and "labelled ddos by alice" in out
    code, out, _ = run(capsys, "review", "list", "--store", store, "--all", "--json",
                       "--limit", 1000)
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["labelled_by"] for r in rows if r["host"] == host} == {"alice"}

    # the label is applied at the next detection and learnt at the next update
    code, _, _ = run(capsys, "backscatter", "detect", sim_heldout.capture, "--model", model,
                     "--store", store, "-o", verdicts, "--overwrite")
    labelled = pq.read_table(verdicts).to_pandas()
    mine = labelled[labelled.src == int(ipaddress.IPv4Address(host))]
    assert set(mine.decided_by) == {"expert"} and set(mine.verdict) == {"ddos"}
    code, out, _ = run(capsys, "backscatter", "train", sim_heldout.capture, "--update", model,
                       "--store", store, "-o", tmp_path / "model2", "--json")
    assert code == 0 and json.loads(out)["expert_labelled"] >= 1

    code, out, _ = run(capsys, "backscatter", "evaluate", verdicts, "--truth",
                       sim_heldout.truth, "--json")
    report = json.loads(out)
    assert code == 0 and 0.9 < report["f1"] <= 1 and "backscatter" in report["by_kind"]
    assert report["windows"] == labelled.shape[0]
    code, out, _ = run(capsys, "backscatter", "evaluate", verdicts, "--truth",
                       sim_heldout.truth, "-o", tmp_path / "scores.json")
    assert "rules alone" in out and "sent to experts" in out
    assert json.loads((tmp_path / "scores.json").read_text()) == report
    code, _, err = run(capsys, "backscatter", "evaluate", verdicts, "--truth",
                       sim_heldout.truth, "-o", tmp_path / "scores.json")
    assert code == 2 and "pass --overwrite" in err

    code, out, _ = run(capsys, "backscatter", "victims", verdicts, sim_heldout.capture, "-o",
                       tmp_path / "v.csv")
    assert code == 0 and "rates x65,536" in out
    assert (tmp_path / "v.csv").read_text().startswith('"victim","start","end"')


def test_ingested_parquet_dataset_gives_the_same_verdicts(sim_heldout, model_dir,
                                                          tmp_path: Path, capsys) -> None:
    assert main(["ingest", str(sim_heldout.capture), "-o", str(tmp_path / "packets")]) == 0
    assert list((tmp_path / "packets").glob("hour=*"))
    outs = []
    for source in (sim_heldout.capture, tmp_path / "packets", sim_heldout.table):
        out = tmp_path / f"v{len(outs)}.parquet"
        code, _, err = run(capsys, "backscatter", "detect", source, "--model", model_dir,
                           "--no-store", "-o", out)
        assert code == 0, err
        outs.append(pq.read_table(out).sort_by([("src", "ascending"),
                                                ("window_start", "ascending")]))
    assert outs[0].equals(outs[1]) and outs[0].equals(outs[2])


def test_bad_input_and_options(sim_heldout, model_dir, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    code, _, err = run(capsys, "backscatter", "detect", empty, "--model", model_dir,
                       "--no-store", "-o", tmp_path / "v.parquet")
    assert code == 1 and "empty.pcap" in err and "Traceback" not in err

    header_only = tmp_path / "header.pcap"
    header_only.write_bytes(sim_heldout.capture.read_bytes()[:24])
    code, _, err = run(capsys, "backscatter", "detect", header_only, "--model", model_dir,
                       "--no-store", "-o", tmp_path / "v.parquet")
    assert code == 1 and "no IPv4 or IPv6 packets" in err

    broken = tmp_path / "broken-model"
    broken.mkdir()
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["feature_definition"] = json.dumps(
        {"variant": "dst-span", "version": 2, "window_packets": None, "window_s": 3600})
    (broken / "model.json").write_text(json.dumps(manifest))
    code, _, err = run(capsys, "backscatter", "detect", sim_heldout.capture, "--model", broken,
                       "--no-store", "-o", tmp_path / "v.parquet")
    assert code == 1 and "feature definition v2" in err

    cases = [
        (["backscatter", "detect", sim_heldout.capture, "--model", model_dir, "--no-store",
          "--telescope", "/40", "-o", tmp_path / "v.parquet"], 2, "prefix length"),
        (["backscatter", "train", sim_heldout.capture, "--expert-oracle", "-o",
          tmp_path / "m"], 2, "--expert-oracle needs --truth"),
        (["backscatter", "train", sim_heldout.capture, "--window", "0h", "-o",
          tmp_path / "m"], 2, "--window"),
        (["backscatter", "train", sim_heldout.capture, "--window", "7m", "--context", "1h", "-o",
          tmp_path / "m"], 2, "context span must be a positive multiple of the time window"),
        (["backscatter", "train", sim_heldout.capture, "--context", "soon", "-o",
          tmp_path / "m"], 2, "--context: expected a positive duration"),
        (["review", "label", "300.1.2.3", "--as", "ddos", "--store", tmp_path / "s.db"], 2,
         "not an IPv4 address"),
        (["review", "list", "--store", tmp_path / "none.db"], 2, "no review store"),
        (["backscatter", "victims", sim_heldout.truth, sim_heldout.capture, "-o",
          tmp_path / "v.parquet"], 1, "verdicts lack column(s) verdict"),
        (["backscatter", "evaluate", sim_heldout.truth, "--truth", sim_heldout.truth], 1,
         "verdicts lack column(s)"),
        (["backscatter", "detect", sim_heldout.capture, "--model", model_dir, "--no-store",
          "--rules", tmp_path / "missing.toml", "-o", tmp_path / "v.parquet"], 1,
         "missing.toml"),
        (["backscatter", "detect", tmp_path / "nothing-here.pcap", "--model", model_dir,
          "--no-store", "-o", tmp_path / "v.parquet"], 2, "no such file"),
    ]
    for args, want_code, text in cases:
        code, _, err = run(capsys, *args)
        assert (code, text in err) == (want_code, True), (args, err)
    (tmp_path / "exists.parquet").write_bytes(b"x")
    code, _, err = run(capsys, "backscatter", "detect", sim_heldout.capture, "--model",
                       model_dir, "--no-store", "-o", tmp_path / "exists.parquet")
    assert code == 2 and "--overwrite" in err
    assert (tmp_path / "exists.parquet").read_bytes() == b"x"


@pytest.mark.parametrize("command", [["backscatter"], ["backscatter", "train"],
                                     ["backscatter", "detect"], ["backscatter", "victims"],
                                     ["backscatter", "evaluate"], ["review", "label"]])
def test_help(command: list[str], capsys) -> None:
    assert main([*command, "--help"]) == 0
    assert "Usage: darkscope" in capsys.readouterr().out


def test_packet_count_windows_and_payload_variant(sim_train, tmp_path: Path, capsys) -> None:
    model = tmp_path / "m"
    code, out, err = run(capsys, "backscatter", "train", sim_train.capture, "--window-packets",
                         50, "--variant", "payload", "--context", "1d", "--no-progress", "--store",
                         tmp_path / "s.db", "-o", model, "--json")
    assert code == 0, err
    assert json.loads(out)["features"] == (
        "features v1, windows of 50 packets, 16-17 = payload, windows under 10 packets judged "
        "on their host's 86400 s context")
    code, _, err = run(capsys, "backscatter", "detect", sim_train.capture, "--model", model,
                       "--no-store", "-o", tmp_path / "v.parquet")
    assert code == 0, err
    verdicts = pq.read_table(tmp_path / "v.parquet")
    assert "payload_mean" in verdicts.column_names
    assert max(verdicts["packets"].to_pylist()) == 50
    assert sum(verdicts["packets"].to_pylist()) == pq.read_metadata(sim_train.table).num_rows


def test_evaluate_leaves_out_hosts_absent_from_the_truth(tmp_path, capsys):
    import pyarrow as pa

    truth = pa.table({"src": pa.array([1, 2, 3, 4], pa.uint32()),
                      "kind": ["backscatter", "backscatter", "zmap", "zmap"],
                      "ddos": [True, True, False, False]})
    verdicts = pa.table({
        "src": pa.array([1, 2, 3, 4, 99, 100, None], pa.uint32()),  # 99, 100, IPv6: no truth
        "window_start": pa.array([0] * 7, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "verdict": ["ddos", "ddos", "not_ddos", "not_ddos", "ddos", "ddos", "ddos"],
        "decided_by": ["model"] * 7, "confidence": [0.9] * 7})
    pq.write_table(truth, tmp_path / "truth.parquet")
    pq.write_table(verdicts, tmp_path / "verdicts.parquet")
    code, out, err = run(capsys, "backscatter", "evaluate", tmp_path / "verdicts.parquet",
                         "--truth", tmp_path / "truth.parquet")
    assert code == 0, err
    assert "precision 1.0000  recall 1.0000" in out and "(tp 2, fp 0, fn 0, tn 2)" in out
    assert "3 windows of hosts not in the truth table left out" in out
    assert "warning: 3 host-windows belong to hosts the truth table does not list" in err


def test_failed_runs_leave_no_store_and_tables_are_named(sim_heldout, model_dir, tmp_path: Path,
                                                        capsys) -> None:
    store = tmp_path / "review.db"
    folder = tmp_path / "folder"
    folder.mkdir()
    for command in (["detect", folder, "--model", model_dir], ["train", folder]):
        code, _, err = run(capsys, "backscatter", *command, "--store", store, "-o",
                           tmp_path / "out")
        assert code == 2 and "no capture files in directory" in err, err
        assert not list(tmp_path.glob("review.db*")), command

    for args, text in [
        (["evaluate", folder, "--truth", sim_heldout.truth],
         f"verdicts {folder} is a directory; give the table file"),
        (["evaluate", model_dir / "model.json", "--truth", sim_heldout.truth],
         "model.json: verdicts: not a Parquet file (no PAR1 magic)"),
        (["evaluate", sim_heldout.truth, "--truth", folder],
         f"--truth: '{folder}' is a directory, not a file"),
    ]:
        code, _, err = run(capsys, "backscatter", *args)
        assert code in (1, 2) and text in err and len(err.strip().splitlines()) == 1, err

    code, _, err = run(capsys, "backscatter", "train", sim_heldout.capture, "--truth",
                       sim_heldout.truth, "--store", store, "-o", tmp_path / "m")
    assert code == 0 and "--truth is only read with --expert-oracle" in err


def test_review_label_refuses_a_host_never_queued(sim_heldout, model_dir, tmp_path: Path,
                                                  capsys) -> None:
    store = tmp_path / "review.db"
    code, _, err = run(capsys, "review", "label", "10.9.8.7", "--as", "ddos", "--store", store)
    assert code == 2 and "no review store yet" in err and not store.exists()
    code, _, _ = run(capsys, "backscatter", "detect", sim_heldout.capture, "--model", model_dir,
                     "--store", store, "-o", tmp_path / "v.parquet")
    assert code == 0
    code, out, _ = run(capsys, "review", "list", "--store", store, "--json")
    queued = json.loads(out.splitlines()[0])
    code, _, err = run(capsys, "review", "label", "10.9.8.7", "--as", "ddos", "--store", store)
    assert code == 2 and "10.9.8.7 was never queued for review" in err and "--force" in err
    code, _, err = run(capsys, "review", "label", queued["host"], "--as", "ddos", "--window",
                       "1999-01-01T00:00:00Z", "--store", store)
    assert code == 2 and "at window 1999-01-01T00:00:00Z was never queued" in err
    code, out, _ = run(capsys, "review", "label", queued["host"], "--as", "scan", "--store",
                       store)
    assert code == 0 and "labelled scan" in out
    code, out, _ = run(capsys, "review", "label", "10.9.8.7", "--as", "ddos", "--force",
                       "--store", store)
    assert code == 0 and "labelled ddos" in out
