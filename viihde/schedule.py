"""The scheduled jobs, read by the scheduler process: `RQ_REDIS_URL=$REDIS_URL rq cron
viihde.schedule` (exactly one per deployment; the URL, with its password, in the
environment rather than on the command line). It queues each job for the SMS workers;
the outbox sweep needs no entry here, every worker runs it itself."""

from rq import cron

from viihde.sms.queue import QUEUE_NAME
from viihde.tasks import purge_register

# Retention, daily at 03:15 (the scheduler's local time): codes, the SMS log, people
# past the proof period, customer relationships that ended. Each unit of work is audited.
cron.register(purge_register, QUEUE_NAME, cron="15 3 * * *", job_timeout=3600, name="purge")
