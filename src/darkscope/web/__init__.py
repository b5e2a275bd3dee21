"""``darkscope serve``: the web application where analysts watch and experts label.

It reads the other commands' outputs (found by schema under ``--data`` with
``darkscope.catalog``, which ``intel`` shares) through DuckDB and writes only to the store
(users, sessions, labels). Modules: ``data`` (DuckDB views and cache), ``rollups``
(summaries), ``queries`` (what each page shows), ``review`` (queue order, labels, model
preview, agreement), ``security`` (headers, limits, CSRF, login limits), ``charts`` (inline
SVG), ``app`` (routes), ``cli`` (serve, users).
"""
