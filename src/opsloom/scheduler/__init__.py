"""Cron, interval and after-completion schedules, fired by one process per database."""

from opsloom.scheduler.scheduler import Scheduler

__all__ = ["Scheduler"]
