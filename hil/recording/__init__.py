"""Recording: the crash-safe append-only recorder (off the loop), its reader and the
exporters (CSV, NPZ).
"""
