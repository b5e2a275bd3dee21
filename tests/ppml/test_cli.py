import json
import stat

import pytest

from darkscope.cli import main


def test_keys_writes_private_secret_and_reports_security(tmp_path, capsys):
    assert main(["ppml", "keys", "-o", str(tmp_path / "k"), "--poly-degree", "4096",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["security_bits"] == 128
    assert report["coeff_modulus_bits"] == 109
    mode = stat.S_IMODE((tmp_path / "k" / "secret.key").stat().st_mode)
    assert mode == 0o600
    assert main(["ppml", "keys", "-o", str(tmp_path / "k")]) == 2  # exists, no --overwrite


def test_party_reports_bad_csv_with_path(tmp_path, capsys):
    bad = tmp_path / "local.csv"
    bad.write_text("a,b,label\n1,2,1\n3,x,2\n")
    token = tmp_path / "p.token"
    token.write_text("t\n")
    code = main(["ppml", "party", "--server", "http://127.0.0.1:9", "--token-file", str(token),
                 "--round", "r", "--data", str(bad), "--insecure-no-pin"])
    assert code == 1
    assert "local.csv" in capsys.readouterr().err


def test_party_without_key_pin_is_refused(tmp_path, capsys):
    good = tmp_path / "local.csv"
    good.write_text("a,b,label\n1,2,1\n3,4,2\n")
    token = tmp_path / "p.token"
    token.write_text("t\n")
    code = main(["ppml", "party", "--server", "http://127.0.0.1:9", "--token-file", str(token),
                 "--round", "r", "--data", str(good)])
    assert code == 2
    assert "--expect-key" in capsys.readouterr().err


def test_solve_without_secret_key_is_a_clear_error(tmp_path, capsys):
    assert main(["ppml", "keys", "-o", str(tmp_path / "k"), "--poly-degree", "4096"]) == 0
    (tmp_path / "k" / "secret.key").unlink()
    token = tmp_path / "kh.token"
    token.write_text("t\n")
    code = main(["ppml", "solve", "--server", "http://127.0.0.1:9", "--token-file", str(token),
                 "--round", "r", "--keys", str(tmp_path / "k")])
    assert code == 1
    assert "cannot read key file" in capsys.readouterr().err


def test_round_config_that_cannot_fit_the_modulus_fails_before_sending(tmp_path, capsys):
    assert main(["ppml", "keys", "-o", str(tmp_path / "k"), "--poly-degree", "4096"]) == 0
    config = {"round_id": "r", "parties": ["a", "b"], "classes": [0, 1], "n_hidden": 5,
              "activation": "sigmoid", "seed": 1, "scale_bits": 24,
              "max_rows_per_party": 1000000, "feature_low": [0], "feature_high": [1]}
    (tmp_path / "round.json").write_text(json.dumps(config))
    (tmp_path / "kh.token").write_text("t\n")
    code = main(["ppml", "round", "--server", "http://127.0.0.1:9", "--token-file",
                 str(tmp_path / "kh.token"), "--keys", str(tmp_path / "k"),
                 "--config", str(tmp_path / "round.json")])
    assert code == 1
    assert "beyond the plaintext bound" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize(("backend", "hidden"), [("bfv", 30), ("paillier", 6)])
def test_bench_runs_every_role_as_a_process_and_matches_plaintext(backend, hidden, capsys,
                                                                  tmp_path):
    assert main(["ppml", "bench", "--dataset", "glass", "--parties", "3", "--hidden",
                 str(hidden), "--backend", backend, "--json", "-o",
                 str(tmp_path / "bench.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    assert report["identical_predictions"] is True
    assert report["accuracy_private"] == report["accuracy_plain"]
    assert report["accuracy_private"] > 0.4
    assert len(report["party_reports"]) == 3
    assert all(r["bytes_sent"] > 0 for r in report["party_reports"])
    assert report["seconds_total"] > report["seconds_parties_wall"] > 0


@pytest.mark.slow
@pytest.mark.network
def test_bench_digits_private_accuracy(capsys):
    assert main(["ppml", "bench", "--dataset", "digits", "--parties", "4", "--hidden", "100",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identical_predictions"] is True
    assert report["accuracy_private"] > 0.9


def test_round_config_missing_fields_names_the_file(tmp_path, capsys):
    assert main(["ppml", "keys", "-o", str(tmp_path / "k"), "--poly-degree", "4096"]) == 0
    (tmp_path / "round.json").write_text(json.dumps({"round_id": "r", "parties": ["a", "b"]}))
    (tmp_path / "kh.token").write_text("t\n")
    code = main(["ppml", "round", "--server", "http://127.0.0.1:9", "--token-file",
                 str(tmp_path / "kh.token"), "--keys", str(tmp_path / "k"),
                 "--config", str(tmp_path / "round.json")])
    assert code == 1
    err = capsys.readouterr().err
    assert "round.json" in err
    assert "max_rows_per_party" in err


def test_serve_on_a_busy_port_is_a_clear_error(tmp_path, capsys):
    import socket

    from darkscope.ppml import tokens

    tokens.issue(["a", "b"], tmp_path / "t")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["ppml", "serve", "--state", str(tmp_path / "s"), "--tokens",
                     str(tmp_path / "t" / tokens.HASHES_FILE), "--port", str(port)])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_each_role_makes_its_own_token_and_only_hashes_are_collected(tmp_path, capsys):
    from darkscope.ppml import tokens

    lines = []
    for name in ["bank-a", "isp-b", "keyholder"]:
        assert main(["ppml", "token", "--name", name, "-o", str(tmp_path / f"{name}.token")]) == 0
        lines.append(capsys.readouterr().out.strip())
        assert stat.S_IMODE((tmp_path / f"{name}.token").stat().st_mode) == 0o600
    (tmp_path / "hashes.txt").write_text("\n".join(lines) + "\n")
    assert main(["ppml", "tokens", "--hashes", str(tmp_path / "hashes.txt"),
                 "-o", str(tmp_path / "agg")]) == 0
    table = tokens.TokenTable.load(tmp_path / "agg" / tokens.HASHES_FILE)
    assert table.parties == ["bank-a", "isp-b"]
    token = tokens.read_token(tmp_path / "isp-b.token")
    assert table.identify(token).name == "isp-b"
    assert token not in (tmp_path / "agg" / tokens.HASHES_FILE).read_text()
    (tmp_path / "bad.txt").write_text(lines[0] + "\nisp-b not-a-hash\n")
    assert main(["ppml", "tokens", "--hashes", str(tmp_path / "bad.txt"),
                 "-o", str(tmp_path / "agg2")]) == 1
    assert "bad.txt" in capsys.readouterr().err


def test_tokens_are_not_replaced_without_overwrite(tmp_path, capsys):
    from darkscope.ppml import tokens

    out = tmp_path / "tokens"
    assert main(["ppml", "tokens", "--parties", "a,b,c", "-o", str(out)]) == 0
    before = tokens.read_token(out / "a.token")
    capsys.readouterr()
    assert main(["ppml", "tokens", "--parties", "a,b", "-o", str(out)]) == 2
    assert "already holds tokens" in capsys.readouterr().err
    assert tokens.read_token(out / "a.token") == before
    assert main(["ppml", "tokens", "--parties", "a,b", "-o", str(out), "--overwrite"]) == 0
    assert tokens.read_token(out / "a.token") != before
    assert not (out / "c.token").exists()  # no longer admitted, so not left behind
    assert tokens.TokenTable.load(out / tokens.HASHES_FILE).parties == ["a", "b"]


def test_text_output_has_no_python_reprs():
    from darkscope.ppml.cli import _text_lines

    lines = _text_lines({"security": {"scheme": "BFV", "bits": 128},
                         "party_reports": [{"party": "a", "seconds": 0.123456}],
                         "parties_in_round": ["a", "b"], "accuracy": 0.98765})
    assert lines == ["security.scheme: BFV", "security.bits: 128", "party_reports:",
                     "  - party=a seconds=0.1235", "parties_in_round: a, b", "accuracy: 0.9877"]


def test_evaluate_scores_a_model_file_and_refuses_what_does_not_fit(tmp_path, capsys):
    import numpy as np

    from darkscope.ppml import datasets
    from darkscope.ppml.elm import ELM

    glass = datasets.load("glass", 0)
    model = ELM(n_hidden=20, random_state=0).fit(glass.X_train, glass.y_train)
    model.save(tmp_path / "model.npz")
    datasets.write_labelled_csv(tmp_path / "test.csv", glass.X_test, glass.y_test)
    assert main(["ppml", "evaluate", "--model", str(tmp_path / "model.npz"), "--round", "r1",
                 "--data", str(tmp_path / "test.csv"), "-o", str(tmp_path / "e.json"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "e.json").read_text())
    assert report["accuracy"] == float(np.mean(model.predict(glass.X_test) == glass.y_test))
    assert sum(c["rows"] for c in report["per_class"].values()) == len(glass.y_test)
    assert main(["ppml", "evaluate", "--round", "r1", "--data",
                 str(tmp_path / "test.csv")]) == 2
    assert "--model FILE" in capsys.readouterr().err
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("a,label\n1,1\n")
    assert main(["ppml", "evaluate", "--model", str(tmp_path / "model.npz"), "--round", "r1",
                 "--data", str(narrow)]) == 1
    assert "1 features, the model 9" in capsys.readouterr().err
