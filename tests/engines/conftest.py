"""One local Spark for every engine test (starting one costs seconds of JVM start)."""

from __future__ import annotations

import shutil

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
