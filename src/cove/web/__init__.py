"""What `cove app` and `cove console` share: the page layout, the stylesheet, the browser libraries and the guard
that keeps a local page local.

Pages are rendered on the server (Jinja2) and updated in place with htmx; charts are Chart.js. Both libraries are
installed from the npm registry at install time (`make assets`, web/package.json) and served from this package, so
a page never fetches anything from another host.
"""
