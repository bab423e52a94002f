"""``opsloom demo``: the incident-response runbook end to end on one machine, no accounts.

:mod:`~opsloom.demo.run` drives it, :mod:`~opsloom.demo.app` is the app it serves,
:mod:`~opsloom.demo.fakes` stands in for the SaaS tools and :mod:`~opsloom.demo.peers` starts
Prometheus, Alertmanager and ``opsloom up`` (the end-to-end tests start them the same way).
"""
