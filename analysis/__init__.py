"""Analysis of ranking-study exports: validated loading, rank statistics, figures and the report.

``analysis.load`` turns ``responses.csv`` into a validated long table; ``analysis.stats`` holds pure functions on that
table (participant-level tests, Plackett–Luce worths, bootstrap intervals, agreement).
"""
