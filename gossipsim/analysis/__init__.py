"""Analysis of results: standard figures and Markdown reports."""
