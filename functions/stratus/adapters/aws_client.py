"""botocore clients for the AWS adapters.

botocore, not boto3: boto3 adds nothing these adapters use (resources, managed
transfers), and importing it (with s3transfer, concurrent.futures, multiprocessing) costs
every cold start. The clients share one botocore session, so the data every client loads
(endpoints, partitions, defaults) is parsed once per process, not once per client;
creating clients is serialized, as a botocore session is not safe to use for that from
several threads at once. Endpoints and credentials come from the environment as botocore
reads them (``AWS_ENDPOINT_URL_<SERVICE>``, the Lambda role).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_session: Any = None


def new_client(service: str, config: Any = None, *, region: str | None = None) -> Any:
    """A botocore client of ``service`` (``"s3"``, ``"secretsmanager"``...), in ``region``
    (default: the session's, i.e. ``AWS_REGION`` in Lambda)."""
    global _session
    import botocore.session

    with _lock:
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client(service, region_name=region, config=config)
