"""Work that waits for people and the policies that route it: approvals, human tasks, decision
tables (:mod:`opsloom.humans.decision`) and the audit log."""
