"""One local Spark for every engine test (starting one costs seconds of JVM start): the
commands run in this process, where their session is the tests' one; and one ingested day."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (Debian: default-jre-headless)", allow_module_level=True)


@pytest.fixture(scope="session")
def spark():
    from darkscope.engines.spark.session import session

    started = session("local[2]", {"spark.sql.shuffle.partitions": "4",
                                   "spark.driver.memory": "2g"}, app="darkscope-tests")
    yield started
    started.stop()


@pytest.fixture(scope="session")
def ingested(sim_heldout, tmp_path_factory) -> Path:
    """The held-out day as `darkscope ingest` writes it: Parquet partitioned by hour."""
    from darkscope.cli import main

    out = tmp_path_factory.mktemp("ingested") / "packets"
    assert main(["ingest", str(sim_heldout.capture), "-o", str(out), "--partition", "hour",
                 "--no-progress"]) == 0
    assert len(list(out.glob("hour=*"))) >= 2
    return out


@pytest.fixture
def darkscope(spark, capsys):
    """Run a darkscope command line here (the Spark commands reuse the tests' session)."""
    from darkscope.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main([*args, "--no-progress"])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
