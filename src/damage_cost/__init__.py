"""Repair-cost estimation from damage and car-part masks.

``features`` turns masks into one row per damage (part overlaps, severity, area), ``claims`` reads and checks claims
tables, ``price_models`` fits and saves price models on them and ``evaluate_pricing`` compares those models by k-fold.
``detector`` wraps a trained model, ``pipeline`` turns a photo into priced damages, ``report`` and ``render`` write
the report files and the annotated picture, ``estimate`` is the command line, ``app`` serves the claims web page
(``web/``), and ``evaluate_cost`` measures the whole chain against the true prices of annotated claims.
"""
