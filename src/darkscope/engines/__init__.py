"""Where the parts' computations run when one machine is not enough (a platform room).

The parts themselves are the local engine (numpy, numba, pyarrow on one machine). ``spark``
runs the same definitions on an Apache Spark cluster over the Parquet packet tables that
``darkscope ingest`` writes, with results equal to the local engine's (tested in local mode).
Engines import the parts, never the reverse.
"""
