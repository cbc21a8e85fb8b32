"""Figures from results: one module per family (trajectories, progression, qi).

Every plotting function takes the data or result first, ``ax=None``, and
returns the Axes; saving happens in the report layer only.
"""
