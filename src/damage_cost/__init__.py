"""Repair-cost estimation from damage and car-part masks.

``features`` turns masks into one row per damage (part overlaps, severity, area), ``claims`` reads and checks claims
tables, ``price_models`` fits and saves price models on them and ``evaluate_pricing`` compares those models by k-fold.
"""
