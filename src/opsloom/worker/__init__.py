"""Claiming jobs, leases, heartbeats, concurrency and graceful shutdown."""

from opsloom.worker.worker import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
