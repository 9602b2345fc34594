"""Which bucket events reach the sync queue: plain data, so tests can configure an emulator
the same way the stack configures S3 (no CDK import here).

Only distributions under packages/ notify: the core metadata files (``.metadata``) that
the API and the sync write next to them never reach the queue. S3 allows one prefix and
one suffix per configuration, hence one configuration per suffix and event type.
"""

from __future__ import annotations

from stratus.domain.keys import PACKAGE_PREFIX

DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip")
EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")


def notification_filters() -> list[tuple[str, str]]:
    """``(prefix, suffix)`` pairs of the bucket's notification configurations."""
    return [(PACKAGE_PREFIX, suffix) for suffix in DISTRIBUTION_SUFFIXES]


def queue_configurations(queue_arn: str) -> list[dict]:
    """The bucket's ``QueueConfigurations`` as the S3 API (PutBucketNotification) takes them."""
    return [
        {
            "QueueArn": queue_arn,
            "Events": [event],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": prefix},
                        {"Name": "suffix", "Value": suffix},
                    ]
                }
            },
        }
        for event in EVENTS
        for prefix, suffix in notification_filters()
    ]
