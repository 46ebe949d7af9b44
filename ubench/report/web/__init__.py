"""The leaderboard as a web page: ``leaderboard/index.html``, written by ``ubench report``.

One static page that opens from the file system or any static host, with no server and no
network: its style, its script and the plotting library (Vega, Vega-Lite and vega-embed, shipped
in ``vendor/`` with their versions and licences in ``vendor/vendor.json``) are inlined. Per table
of the leaderboard it shows the sortable table (intervals as bars and text, reference rows pinned
on top, direction arrows), a trade-off plot (the table's forgetting metric against its keep
metric, one marker per row with its interval whiskers, base and oracle as labelled reference
markers, and any extra points such as tuning points and their Pareto fronts) and a thumbnail of
each row's sample grid. Every record gets a page of its own under ``runs/``.

Escaping: every string from a record reaches the page through Jinja2 with autoescaping (HTML
text and attributes) or through JSON inside ``<script type="application/json">`` with ``<``,
``>`` and ``&`` written as ``\\u003c``-style escapes; the page's script never writes HTML from
data (``textContent`` and Vega's SVG text only). Links into the store are relative,
percent-encoded file paths that the report computed, never strings taken from a record.

Modules: :mod:`ubench.report.web.render` (page data, thumbnails, run pages),
:mod:`ubench.report.web.plot`
(the Vega-Lite specifications); ``templates/`` and ``static/`` hold the HTML, CSS and script.
"""
