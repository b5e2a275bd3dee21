"""darkscope: machine-learning cyber-threat monitoring.

Five parts, one subpackage each: ``packets`` (captures to columnar tables), ``simulate``,
``backscatter``, ``patterns``, ``darkweb`` and ``topics``, ``ppml``; with a small shared core
(``errors``, ``progress``, ``io``) and one command line (``cli``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("darkscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
