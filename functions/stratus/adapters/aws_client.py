"""botocore clients for the AWS adapters.

botocore, not boto3: boto3 adds nothing these adapters use (resources, managed
transfers), and importing it (with s3transfer, concurrent.futures, multiprocessing) costs
every cold start. Each client gets a botocore session of its own: setting one up is not
thread-safe. Endpoints and credentials come from the environment as botocore reads them
(``AWS_ENDPOINT_URL_<SERVICE>``, the Lambda role).
"""

from __future__ import annotations

from typing import Any


def new_client(service: str, config: Any = None) -> Any:
    """A botocore client of ``service`` (``"s3"``, ``"secretsmanager"``...)."""
    import botocore.session

    return botocore.session.get_session().create_client(service, config=config)
