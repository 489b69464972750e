"""The durable background queue: jobs in the database, workers that lease them, schedules.

Used by the monitoring stage (drift checks, alert evaluation, retention), and by
evaluation, tuning and automation for anything longer than a request.
"""

from modelcycle.jobs.context import Handler, JobContext, JobInterrupted
from modelcycle.jobs.leases import LeaseLost
from modelcycle.jobs.queue import Jobs
from modelcycle.jobs.scheduler import Scheduler
from modelcycle.jobs.schemas import JobEventView, JobState, JobView, ScheduleView
from modelcycle.jobs.worker import Worker

__all__ = [
    "Handler",
    "JobContext",
    "JobEventView",
    "JobInterrupted",
    "JobState",
    "JobView",
    "Jobs",
    "LeaseLost",
    "ScheduleView",
    "Scheduler",
    "Worker",
]
