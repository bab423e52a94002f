"""Serverless Workflow DSL 1.0 documents: load (with positions), validate, jq, interpret."""
