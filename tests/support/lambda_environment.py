"""One Lambda execution environment of the API function, as a script (a fresh process).

    python tests/support/lambda_environment.py init [EVENT_FILE]
    python tests/support/lambda_environment.py restore PORT[,PORT...] EVENT_FILE...

``init`` imports the handler module (the Lambda init), serves the event in EVENT_FILE if
given, and prints what was imported when, whether the app was built at init, and the
status. ``restore`` serves the events, runs the SnapStart after-restore hooks the way the
runtime does, serves them again, and prints the per-environment state before and after:
the credential cache's key and size, this process's TCP connections to 127.0.0.1:PORT
(an emulator), the ``random`` generator's state.

It imports only the standard library before the handler, so ``sys.modules`` shows what the
handler itself imports. The output is one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import types


def lambda_context() -> object:
    return types.SimpleNamespace(
        function_name="stratus-api",
        function_version="1",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stratus-api:live",
        aws_request_id="c0ffee",
        get_remaining_time_in_millis=lambda: 29_000,
    )


def established(ports: set[int]) -> int:
    """TCP connections of this process to 127.0.0.1:<port> in ``ports`` (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = 0
    with open("/proc/self/net/tcp") as fh:
        for line in list(fh)[1:]:
            fields = line.split()
            port = int(fields[2].split(":")[1], 16)
            if fields[3] == "01" and fields[9] in inodes and port in ports:  # 01: ESTABLISHED
                found += 1
    return found


def init(event_file: str | None) -> dict:
    import gc

    frozen_before = gc.get_freeze_count()  # the interpreter's own (a few hundred on 3.12)
    import stratus.handlers.api as api

    report: dict = {
        "at_init": sorted(sys.modules),
        "built": api._asgi_handler is not None,
        "gc_enabled": gc.isenabled(),
        "gc_frozen": gc.get_freeze_count() - frozen_before,
    }
    if event_file is not None:
        with open(event_file) as fh:
            report["status"] = api.handler(json.load(fh), lambda_context())["statusCode"]
    report["after"] = sorted(sys.modules)
    return report


def restore(ports: set[int], event_files: list[str]) -> dict:
    import random

    import snapshot_restore_py

    import stratus.handlers.api as api

    events = []
    for path in event_files:
        with open(path) as fh:
            events.append(json.load(fh))
    policy = api._asgi_handler.app.state.ctx.policy

    def serve() -> list[int]:
        return [api.handler(event, lambda_context())["statusCode"] for event in events]

    def state() -> dict:
        return {
            "key": policy._cache_key.hex(),
            "cached": len(policy._verified),
            "connections": established(ports),
        }

    status = serve()  # logins fill the cache, requests connect
    # The table's transactions client is ours (the reads' is pynamodb's): one call on it
    # leaves a pooled connection, as a write would.
    from stratus.adapters.dynamo_table import table_for

    table_for(os.environ["STRATUS_TABLE_NAME"]).transactions.client.describe_limits()
    before = {"status": status, **state()}
    generator = random.getstate()
    hooks = snapshot_restore_py.get_after_restore()
    for func, args, kwargs in hooks:  # what the runtime does after restoring a snapshot
        func(*args, **kwargs)
    after = state()
    after["random_reseeded"] = random.getstate() != generator
    after["hooks"] = [f"{func.__module__}.{func.__name__}" for func, _, _ in hooks]
    after["status"] = serve()
    return {"before": before, "after": after}


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "init":
        result = init(rest[0] if rest else None)
    else:
        result = restore({int(port) for port in rest[0].split(",")}, rest[1:])
    print(json.dumps(result))
