"""The claims web app: ``service`` turns uploaded photos into the estimator's report, ``routes`` is the Flask
application (page, static files, JSON API), ``static/`` holds the page, its script and its style sheet."""
