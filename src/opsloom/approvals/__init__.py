"""Approvals: asking people from a run, routing requests through stages, deciding them."""
