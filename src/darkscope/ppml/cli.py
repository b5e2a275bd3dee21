"""``darkscope ppml``: privacy-preserving ELM training across organizations.

Each role is its own command and process: ``tokens`` and ``keys`` set up, ``serve`` runs the
aggregator, ``round`` (key holder) publishes a round, ``party`` contributes encrypted sums,
``solve`` (key holder) decrypts the aggregate and publishes the model, ``bench`` runs it all on
loopback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from darkscope.clikit import common, output_option, overwrite_option, seed_option
from darkscope.errors import DarkscopeError, InputFormatError, UsageError
from darkscope.io import check_output, write_json

_SERVER = click.option("--server", required=True, metavar="URL",
                       help="Aggregator base URL, e.g. http://127.0.0.1:8750.")
_TOKEN = click.option("--token-file", type=click.Path(dir_okay=False), required=True,
                      help="File holding this role's bearer token (from `ppml tokens`).")
_ROUND = click.option("--round", "round_id", required=True, help="Round id.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def _emit(report: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        for line in _text_lines(report):
            click.echo(line)


def _scalar(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _text_lines(report: dict, prefix: str = "") -> list[str]:
    """``key: value`` lines for people: nested objects as dotted keys, a list of objects one
    indented line each, so no Python repr reaches the terminal (``--json`` keeps the structure)."""
    lines: list[str] = []
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.extend(_text_lines(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{name}:")
            lines.extend("  - " + " ".join(f"{k}={_scalar(v)}" for k, v in item.items())
                         for item in value)
        elif isinstance(value, list):
            lines.append(f"{name}: {', '.join(_scalar(v) for v in value)}")
        else:
            lines.append(f"{name}: {_scalar(value)}")
    return lines


@click.group("ppml")
def ppml() -> None:
    """Privacy-preserving Extreme Learning Machine across organizations.

    Parties encrypt their HᵀH and HᵀT under an additively homomorphic scheme (BFV via
    TenSEAL by default, Paillier as baseline); the aggregator adds ciphertexts without any
    secret key; only the key holder decrypts the total and solves the output weights.
    See docs/ppml.md for the protocol and threat model.
    """


@ppml.command("tokens")
@click.option("--parties", default=None, help="Comma-separated party names: issue every token "
                                              "here (the operator then sees them all).")
@click.option("--hashes", "hashes_file", type=click.Path(dir_okay=False), default=None,
              help="File of 'name sha256' lines from `ppml token`: build only the aggregator's "
                   "hash file (preferred: nobody but each owner sees a token).")
@output_option(help="Directory for aggregator-tokens.json (and <name>.token with --parties).")
@overwrite_option
@common
def tokens_command(parties: str | None, hashes_file: str | None, output: str,
                   overwrite: bool) -> None:
    """Make the aggregator's token file (SHA-256 hashes only).

    Preferred: every party and the key holder runs `ppml token` and sends the printed hash;
    `--hashes` collects them. `--parties` instead issues every <name>.token (mode 0600) in one
    place: whoever runs it must be neither the key holder nor the aggregator.
    """
    from darkscope.ppml import tokens

    if (parties is None) == (hashes_file is None):
        raise UsageError("give exactly one of --parties and --hashes")
    if hashes_file is not None:
        path = tokens.collect(hashes_file, output, overwrite)
    else:
        path = tokens.issue([p.strip() for p in parties.split(",") if p.strip()], output,
                            overwrite)
    click.echo(str(path))


@ppml.command("token")
@click.option("--name", required=True,
              help="This role's name: a party name, or 'keyholder' for the key holder.")
@output_option(help="Token file to write (mode 0600); keep it.")
@overwrite_option
@common
def token_command(name: str, output: str, overwrite: bool) -> None:
    """Make this role's own bearer token; print 'name sha256' for the aggregator's operator.

    Only the hash leaves this machine, so no one else ever sees the token.
    """
    from darkscope.ppml import tokens

    click.echo(f"{name} {tokens.issue_own(name, output, overwrite)}")


@ppml.command("keys")
@click.option("--backend", type=click.Choice(["bfv", "paillier"]), default="bfv",
              show_default=True, help="Homomorphic scheme.")
@click.option("--poly-degree", type=click.Choice(["4096", "8192"]), default="8192",
              show_default=True, help="BFV polynomial degree (slots per ciphertext).")
@click.option("--paillier-bits", type=int, default=3072, show_default=True,
              help="Paillier modulus size (3072 ≈ 128-bit security, the minimum).")
@click.option("--insecure-allow-weak-keys", "allow_insecure", is_flag=True,
              help="Allow 2048-bit Paillier keys (≈ 112-bit) for local measurements; every "
                   "role still refuses them in a round.")
@output_option(help="Directory for secret.key (keep it) and public.key.")
@overwrite_option
@_JSON
@common
def keys_command(backend: str, poly_degree: str, paillier_bits: int, allow_insecure: bool,
                 output: str, overwrite: bool, as_json: bool) -> None:
    """Key holder: make a key pair and report the security level of its parameters.

    Give the printed public_key_sha256 to the parties out of band (they pass it as
    `ppml party --expect-key`), so a key substituted in transit is refused.
    """
    from darkscope.ppml import roles

    header = roles.make_keys(output, backend, int(poly_degree), paillier_bits, overwrite,
                             allow_insecure)
    _emit({"backend": header["backend"], **header["security"],
           "public_key_sha256": header["public_key_sha256"]}, as_json)


@ppml.command("serve")
@click.option("--state", type=click.Path(file_okay=False), required=True,
              help="Directory where rounds are kept (survives restarts).")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False), required=True,
              help="aggregator-tokens.json from `ppml tokens`.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8750, show_default=True, help="Port (0: any free).")
@click.option("--ready-file", type=click.Path(dir_okay=False), default=None,
              help="Write {\"url\", \"pid\"} here once listening.")
@common
def serve_command(state: str, tokens_file: str, host: str, port: int,
                  ready_file: str | None) -> None:
    """Aggregator: accept each party's encrypted sums once per round and add them.

    Holds only public keys; releases the aggregate to the key holder once every party of
    the round has contributed.
    """
    from darkscope.ppml import server

    server.serve(state, tokens_file, host, port, ready_file)


@ppml.command("round")
@_SERVER
@_TOKEN
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), required=True,
              help="Key holder's key directory (only public.key is sent).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), required=True,
              help="Round configuration JSON (see docs/ppml.md); scale_bits may be \"auto\".")
@click.option("--deadline", default=None, metavar="WHEN",
              help="No contribution is accepted after this: an ISO 8601 time or a duration "
                   "from now (30m, 2h). Overrides the config's \"deadline\".")
@click.option("--quorum", type=click.IntRange(2), default=None,
              help="Fewest parties whose sum may be released after the deadline (default: "
                   "all). Overrides the config's \"quorum\".")
@_JSON
@common
def round_command(server: str, token_file: str, keys_dir: str, config_file: str,
                  deadline: str | None, quorum: int | None, as_json: bool) -> None:
    """Key holder: publish a round's configuration and the public key via the aggregator.

    With a deadline, a party that never uploads cannot block the round: once the deadline
    has passed, the sum over the parties that contributed is released if they are at least
    the quorum (see docs/ppml.md for what a smaller sum reveals), and the round fails
    otherwise.
    """
    from darkscope.ppml import roles, tokens
    from darkscope.ppml.client import AggregatorClient
    from darkscope.ppml.encoding import largest_scale_bits
    from darkscope.ppml.rounds import RoundConfig, resolve_deadline

    try:
        raw = json.loads(Path(config_file).read_text())
    except (OSError, ValueError) as exc:
        raise InputFormatError(config_file, f"not a readable JSON round config ({exc})") from exc
    keys = roles.load_keys(Path(keys_dir) / roles.PUBLIC_FILE)
    if not isinstance(raw, dict):
        raise InputFormatError(config_file, "a round config is a JSON object")
    raw.setdefault("backend", keys.name)
    if quorum is not None:
        raw["quorum"] = quorum
    if deadline is not None or raw.get("deadline"):
        try:
            raw["deadline"] = resolve_deadline(str(deadline or raw["deadline"]))
        except DarkscopeError as exc:
            raise (UsageError(f"--deadline: {exc}") if deadline else
                   InputFormatError(config_file, str(exc))) from exc
    if raw.get("scale_bits", "auto") == "auto":
        try:
            rows = int(raw["max_rows_per_party"]) * len(raw["parties"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFormatError(config_file, "scale_bits \"auto\" needs max_rows_per_party "
                                                f"and parties ({exc!r})") from exc
        raw["scale_bits"] = largest_scale_bits(rows, keys.plaintext_bound)
    try:
        config = RoundConfig.from_json(raw, new=True)
    except DarkscopeError as exc:
        raise InputFormatError(config_file, str(exc)) from exc
    with AggregatorClient(server, tokens.read_token(token_file)) as client:
        answer = roles.open_round(client, keys_dir, config)
    _emit({**answer, "scale_bits": config.scale_bits, "n_values": config.n_values,
           "quorum": config.quorum, "deadline": config.deadline or None}, as_json)


@ppml.command("party")
@_SERVER
@_TOKEN
@_ROUND
@click.option("--data", type=click.Path(dir_okay=False, exists=True), required=True,
              help="CSV with a header, numeric features and a label column.")
@click.option("--label-column", default="label", show_default=True, help="Label column.")
@click.option("--name", default=None, help="Party name (default: token file name stem).")
@click.option("--expect-key", default=None, metavar="SHA256",
              help="The key holder's public_key_sha256 (from `ppml keys`, given out of band); "
                   "refuse a round carrying any other key. Required unless --insecure-no-pin.")
@click.option("--insecure-no-pin", is_flag=True,
              help="Encrypt under whatever key the aggregator serves (a malicious aggregator "
                   "could substitute its own and decrypt this party's sums).")
@_JSON
@common
def party_command(server: str, token_file: str, round_id: str, data: str, label_column: str,
                  name: str | None, expect_key: str | None, insecure_no_pin: bool,
                  as_json: bool) -> None:
    """Party: compute HᵀH and HᵀT of local data, encrypt them, upload once.

    Needs --expect-key (the key holder's fingerprint) or an explicit --insecure-no-pin.
    """
    from darkscope.ppml import roles, tokens
    from darkscope.ppml.client import AggregatorClient
    from darkscope.ppml.datasets import read_labelled_csv

    if expect_key is None and not insecure_no_pin:
        raise UsageError("give --expect-key SHA256 (the key holder's public_key_sha256, "
                         "received out of band) or --insecure-no-pin")
    features, labels = read_labelled_csv(data, label_column)
    party = name or Path(token_file).stem
    with AggregatorClient(server, tokens.read_token(token_file)) as client:
        report = roles.contribute(client, round_id, party, features, labels, expect_key,
                                  insecure_no_pin)
    _emit(report, as_json)


@ppml.command("solve")
@_SERVER
@_TOKEN
@_ROUND
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), required=True,
              help="Key holder's key directory (secret.key).")
@click.option("--C", "C", type=float, default=1.0, show_default=True,
              help="Ridge regularisation C of (HᵀH + I/C) β = HᵀT.")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for missing parties (past the round's deadline, if it has "
                   "one: then the parties that are in count, given the quorum).")
@click.option("--totals", type=click.Path(dir_okay=False), default=None,
              help="Key holder's running totals (.npz, kept private): add this round's "
                   "aggregate to earlier rounds' and solve from all (online learning).")
@output_option(required=False, help="Also save the model (.npz) here.")
@overwrite_option
@_JSON
@common
def solve_command(server: str, token_file: str, round_id: str, keys_dir: str, C: float,
                  wait: float, totals: str | None, output: str | None, overwrite: bool,
                  as_json: bool) -> None:
    """Key holder: decrypt the aggregate only, solve β, publish the model."""
    from darkscope.ppml import roles, tokens
    from darkscope.ppml.client import AggregatorClient

    if not math.isfinite(C) or C <= 0:
        raise UsageError(f"--C must be a positive number, got {C}")
    with AggregatorClient(server, tokens.read_token(token_file)) as client:
        _, report = roles.solve(client, round_id, keys_dir, C, output, wait, overwrite,
                                totals)
    _emit(report, as_json)


@ppml.command("evaluate")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, exists=True),
              default=None, help="The published model (.npz); without it, fetched from "
                                 "--server for --round.")
@click.option("--server", default=None, metavar="URL",
              help="Aggregator base URL to fetch the round's published model from.")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="This role's bearer token file (with --server).")
@_ROUND
@click.option("--data", type=click.Path(dir_okay=False, exists=True), required=True,
              help="Held-out CSV with a header, numeric features and a label column (never "
                   "used for training).")
@click.option("--label-column", default="label", show_default=True, help="Label column.")
@click.option("--name", default="local", show_default=True,
              help="Who evaluated (a party's name), recorded in the report.")
@output_option(required=False, help="Also write the report (JSON) here, e.g. under the "
                                    "dashboard's --data (`darkscope serve` shows it).")
@overwrite_option
@_JSON
@common
def evaluate_command(model_path: str | None, server: str | None, token_file: str | None,
                     round_id: str, data: str, label_column: str, name: str,
                     output: str | None, overwrite: bool, as_json: bool) -> None:
    """Party: score a round's published model on local held-out data.

    The report holds accuracy, per-class recall and row counts: no data values, so it can be
    shared with the other organisations and shown on the dashboard's PP-ELM page.
    """
    from darkscope.ppml import roles, tokens
    from darkscope.ppml.client import AggregatorClient
    from darkscope.ppml.datasets import read_labelled_csv

    if output:
        check_output(output, overwrite)
    if model_path:
        model_bytes = Path(model_path).read_bytes()
    elif server and token_file:
        with AggregatorClient(server, tokens.read_token(token_file)) as client:
            model_bytes = client.model(round_id)
    else:
        raise UsageError("give --model FILE, or --server URL and --token-file FILE to fetch "
                         "the round's published model")
    features, labels = read_labelled_csv(data, label_column)
    report = roles.evaluate(model_bytes, features, labels, round_id, name)
    if output:
        write_json(report, output, overwrite=overwrite)
    _emit(report, as_json)


@ppml.command("bench")
@click.option("--dataset", type=click.Choice(["glass", "digits", "satellite", "shuttle"]),
              required=True, help="Dataset (shipped with darkscope).")
@click.option("--parties", type=click.IntRange(2, 64), default=3, show_default=True,
              help="Number of party processes.")
@click.option("--hidden", type=click.IntRange(1, 5000), default=100, show_default=True,
              help="Hidden units L.")
@click.option("--backend", type=click.Choice(["bfv", "paillier"]), default="bfv",
              show_default=True, help="Homomorphic scheme.")
@click.option("--poly-degree", type=click.Choice(["4096", "8192"]), default="8192",
              show_default=True, help="BFV polynomial degree.")
@click.option("--C", "C", type=float, default=None, help="Regularisation (default per dataset).")
@click.option("--activation", type=click.Choice(["sigmoid", "tanh"]), default="sigmoid",
              show_default=True, help="Hidden activation.")
@seed_option
@_JSON
@output_option(required=False, help="Also write the results here as JSON.")
@overwrite_option
@common
def bench_command(dataset: str, parties: int, hidden: int, backend: str, poly_degree: str,
                  C: float | None, activation: str, seed: int, as_json: bool,
                  output: str | None, overwrite: bool) -> None:
    """Run the whole protocol on loopback, one process per role, and compare with plaintext.

    Prints plaintext vs private accuracy, whether predictions are identical, time per role
    and bytes each party sends.
    """
    from darkscope.ppml.bench import run_bench

    if output:
        check_output(output, overwrite)
    report = run_bench(dataset, parties, hidden, backend=backend, seed=seed, C=C,
                       activation=activation, poly_degree=int(poly_degree))
    if output:
        write_json(report, output, overwrite)
    _emit(report, as_json)
