"""``darkscope serve``: the web application where analysts watch and experts label.

It reads the other commands' outputs (found by schema under ``--data``) through DuckDB and
writes only to the store (users, sessions, labels). Modules: ``catalog`` (what is under
--data), ``data`` (DuckDB views and cache), ``queries`` (what each page shows), ``review``
(queue order, labels, model preview, agreement), ``security`` (headers, limits, CSRF),
``charts`` (inline SVG), ``app`` (routes), ``cli`` (serve, users).
"""
