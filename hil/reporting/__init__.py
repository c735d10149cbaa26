"""Reporting: the merged report and its gates (report, scoring), the HTML report with its
plots (matplotlib, imported only here), the SQLite run history and the live status line.
"""
