"""``python -m darkscope``; also the script ``spark-submit`` runs, since it takes a file and
not an entry point (docs/spark.md: Running on a cluster)."""

from darkscope.cli import main

raise SystemExit(main())
