"""Who may do what (users, groups, roles, API tokens) and the tamper-evident audit log."""
