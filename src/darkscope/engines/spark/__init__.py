"""The Spark engine: :mod:`.session` (a SparkSession with the settings darkscope's data need),
:mod:`.packets` (packet tables as the detector counts them) and :mod:`.features` (the 17
host-window features in Spark SQL). Needs ``pyspark`` (the ``spark`` extra) and Java."""
