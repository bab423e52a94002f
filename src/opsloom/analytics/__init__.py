"""Insight into opsloom itself: metrics, logs, traces, health and run analytics.

Everything here listens to the engine through :class:`~opsloom.model.observer.Observer` or reads
the store; the engine, the worker and the store never import this package.
"""
