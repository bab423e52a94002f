"""Triggers: webhook sources, event intake and the triggers code registers on an App."""
