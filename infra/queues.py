"""The job queue of a worker function and its dead-letter queue (fills, upload completions).

Both encrypted (SSE-SQS) and TLS only; jobs, not data (a request queues them again), so
they go with their stack. The job queue's visibility timeout is six times the worker's
timeout (AWS's advice for Lambda event sources), and a job that fails
``max_receive_count`` times moves to the dead-letter queue, which the monitoring stack
alarms on.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .functions import StratusFunction, ack


def job_queues(
    scope: Construct,
    *,
    jobs_id: str,
    dead_letters_id: str,
    timeout_seconds: int,
    max_receive_count: int,
    reason: str,
) -> tuple[sqs.Queue, sqs.Queue]:
    """``(jobs, dead letters)``; ``reason`` says whose dead-letter queue it is (cdk-nag)."""
    dead_letters = sqs.Queue(
        scope,
        dead_letters_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        removal_policy=RemovalPolicy.DESTROY,
    )
    ack(dead_letters, "AwsSolutions-SQS3", reason)
    jobs = sqs.Queue(
        scope,
        jobs_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=Duration.seconds(6 * timeout_seconds),
        retention_period=Duration.days(1),
        dead_letter_queue=sqs.DeadLetterQueue(
            queue=dead_letters, max_receive_count=max_receive_count
        ),
        removal_policy=RemovalPolicy.DESTROY,
    )
    return jobs, dead_letters


def work_off(fn: StratusFunction, jobs: sqs.IQueue, *, max_concurrency: int) -> None:
    """``fn`` takes the jobs one at a time, failing only the job that failed (partial
    batch responses), at most ``max_concurrency`` at once."""
    fn.function.add_event_source(
        event_sources.SqsEventSource(
            jobs,
            batch_size=1,
            report_batch_item_failures=True,
            max_concurrency=max_concurrency,
        )
    )


def allow_queueing_to(fn: StratusFunction, sid: str, jobs: sqs.IQueue, url_variable: str) -> None:
    """``fn`` may send to ``jobs`` and finds its URL in ``url_variable``."""
    fn.allow(sid, ["sqs:SendMessage"], [jobs.queue_arn])
    fn.function.add_environment(url_variable, jobs.queue_url)
