"""Threat-intel sharing: darkscope's findings as blocklists and STIX 2.1 bundles.

A platform room: it reads the parts' outputs (verdicts, victims, host attributions, found by
their schema) and imports no other room. Modules: ``findings`` (what is exported, and why each
address is in it), ``allowlist`` (known research scanners, dropped before any export),
``blocklist`` (CSV and JSON Lines), ``stix`` (STIX 2.1 with the ``stix2`` library), ``cli``
(``darkscope export``).
"""
