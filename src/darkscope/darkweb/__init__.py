"""Dark web market monitoring, first half: crawl onion markets over Tor and extract listings.

The parts follow the published system's separation and can each be replaced or tested alone:
``connection`` (Tor / SOCKS5h, control port), ``frontier`` (persistent crawl state),
``fetcher`` (one HTTP exchange under limits), ``archive`` (WARC), ``parsers`` (templates and a
generic fallback) and ``listings`` (schema, JSON Lines / Parquet, changes between crawls).
``crawler`` wires them together.
"""
