"""The data-sync runbook as a real worker process loads it (``--app datasync_worker:app``).

Its settings come from the environment the test gives the process: the Linear team.
"""

from __future__ import annotations

import os

from examples.runbooks.datasync import SyncSettings, install

from opsloom import App

app = App()
install(app, SyncSettings(table="support_tickets", team_id=os.environ["DATASYNC_TEAM"], every=None))
