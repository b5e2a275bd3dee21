"""The docs' multi-step examples run as written: each test takes a fenced block out of the
Markdown and runs it in bash, so a renamed flag or a moved file breaks CI, not a reader."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from darkscope.ppml import ELM, datasets

DOCS = Path(__file__).resolve().parents[1] / "docs"


def fenced_block(doc: str, after: str, language: str) -> str:
    """The first ```language block after the line that starts with ``after``."""
    text = (DOCS / doc).read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match, f"no {language} block after {after!r} in {doc}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.network
def test_ppml_hand_run_round_runs_as_written(tmp_path):
    script = fenced_block("ppml.md", "## Running a round by hand", "bash")
    config = json.loads(fenced_block("ppml.md", "`round.json` (all parties agree", "json"))
    (tmp_path / "round.json").write_text(json.dumps(config))
    rng = np.random.default_rng(5)
    low, high = np.array(config["feature_low"]), np.array(config["feature_high"])
    shares = {}
    for party in config["parties"]:  # three classes separable on the first feature
        labels = rng.choice(config["classes"], size=120)
        features = rng.uniform(low, high, size=(120, len(low)))
        features[:, 0] = (labels - 1) * 80 + rng.uniform(0, 60, size=120)
        shares[party] = (features, labels)
        datasets.write_labelled_csv(tmp_path / f"{party}.csv", features, labels)
    # only the port changes, so parallel test runs do not collide on 8750
    script = script.replace("8750", str(free_port()))
    bin_dir = Path(sys.executable).parent  # the darkscope entry point of this environment
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "{'" not in done.stdout  # text output, not Python reprs

    record = json.loads((tmp_path / "keys" / "rounds" / "r1.json").read_text())
    X = np.concatenate([f for f, _ in shares.values()])
    y = np.concatenate([labels for _, labels in shares.values()])
    plain = ELM(n_hidden=config["n_hidden"], C=1e6, random_state=config["seed"],
                scale_bits=record["scale_bits"], feature_low=low, feature_high=high).fit(X, y)
    private = ELM.load(tmp_path / "model.npz")
    assert np.array_equal(private.predict(X), plain.predict(X))
    assert np.mean(private.predict(X) == y) > 0.9


@pytest.mark.parametrize(("language", "name"), [("text", "cookies.txt"), ("json", "cookies.json")])
def test_cookie_file_examples_load(language, name, tmp_path):
    from darkscope.darkweb.cookies import load_cookies

    example = fenced_block("darkweb.md", "## Logging in", language)
    example = "\n".join(line.strip() for line in example.splitlines()) + "\n"  # list indent
    (tmp_path / name).write_text(example)
    (cookie,) = load_cookies(tmp_path / name)
    assert (cookie.name, cookie.value) == ("session", "3f9a1c")
    assert cookie.domain.endswith(".onion") and cookie.path == "/"
