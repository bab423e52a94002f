"""Expressions and where things are written: jq evaluation, source positions, diagnostics.

Neutral ground shared by workflow documents and decision tables; imports no other part of
opsloom.
"""
