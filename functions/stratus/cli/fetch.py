"""``stratus fetch``: ask an index with ``pypi.fallback = cache`` to cache the best upstream
match of every requirement (the client of pypicloud's ``POST /api/fetch``).

Requirements come from ``-r FILE`` (nested ``-r`` lines followed, as pip does) and the
command line. They go to the index in small batches (``--batch``, one by default), so
each one's outcome shows as it comes (``fetched 3/20: requests==2.32.3``); other option
lines (``--index-url``, ``-e``) are not requirements and are left out. At the end a
summary, and the reason of every failure; the exit code is 1 if any requirement failed.

Credentials as ``stratus upload`` (and twine) finds them: ``-u``/``-p``,
``TWINE_USERNAME``/``TWINE_PASSWORD``, the ``~/.pypirc`` section named by
``--repository`` (or whose ``repository`` is the URL), the keyring, a prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

from .upload import Http, UploadError, credential_arguments, find_repository, index_root

FETCH_PATH = "api/fetch"
INCLUDE_OPTIONS = ("--requirement", "-r")  # the longer first
# The server's limits per request (app.fetch): a batch stays well under them.
MAX_BATCH = 50


class FetchError(Exception):
    """The index refused a request: the message says why."""


@dataclass
class Outcome:
    requirement: str
    files: list[str] = field(default_factory=list)  # "<filename> (<status>)"
    reasons: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.reasons) or not self.files


def _include(line: str) -> str | None:
    """The file a ``-r FILE`` / ``-rFILE`` / ``--requirement[=]FILE`` line names, else None."""
    for option in INCLUDE_OPTIONS:
        if line.startswith(option):
            return line[len(option) :].lstrip(" \t=") or None
    return None


def read_requirements(path: Path, seen: set[Path] | None = None) -> Iterator[str]:
    """The requirement lines of a requirements file, its ``-r`` includes followed."""
    from ..app.fetch import requirement_lines

    seen = set() if seen is None else seen
    resolved = path.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    text = path.read_text(encoding="utf-8")
    for line in requirement_lines(text, max_text=None, max_lines=None):
        included = _include(line)
        if included is not None:
            yield from read_requirements(path.parent / included, seen)
        elif line.startswith("-"):
            continue  # --index-url, -e, -c, --hash...: not something to cache
        else:
            yield line


def _answer(response: Any) -> dict[str, Any]:
    text = response.data.decode("utf-8", "replace").strip()
    if response.status != 200:
        raise FetchError(text[:2000] or f"{response.status} (no message)")
    try:
        found = json.loads(text)
    except ValueError:
        raise FetchError(f"the index answered {response.status}: {text[:200]}") from None
    if not isinstance(found, dict):
        raise FetchError("the index answered with unexpected JSON")
    return found


class Fetcher:
    def __init__(self, http: Http, *, wheel: bool | None, prerelease: bool) -> None:
        self.http = http
        self.url = urljoin(index_root(http.repository.url), FETCH_PATH)
        self.wheel = wheel
        self.prerelease = prerelease

    def fetch(self, requirements: list[str]) -> list[Outcome]:
        """One request for a batch; the outcome of each requirement, in order."""
        fields = {"requirements": "\n".join(requirements)}
        if self.wheel is not None:
            fields["wheel"] = "true" if self.wheel else "false"
        if self.prerelease:
            fields["prerelease"] = "true"
        response = self.http.index(
            "POST",
            self.url,
            body=urlencode(fields).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        answer = _answer(response)
        outcomes = {line: Outcome(line) for line in requirements}
        for entry in answer.get("fetched", []):
            found = outcomes.get(entry.get("requirement", ""))
            if found is not None:
                found.files.append(f"{entry.get('filename')} ({entry.get('status')})")
        for entry in answer.get("failed", []):
            found = outcomes.get(entry.get("requirement", ""))
            if found is not None:
                found.reasons.append(str(entry.get("reason", "failed")))
        for outcome in outcomes.values():
            if outcome.failed and not outcome.reasons:
                outcome.reasons.append("the index reported nothing for it")
        return [outcomes[line] for line in requirements]


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run(args: argparse.Namespace) -> int:
    from .progress import from_args

    requirements: list[str] = []
    try:
        for name in args.requirement or []:
            requirements.extend(read_requirements(Path(name)))
    except (OSError, ValueError) as exc:
        print(f"stratus fetch: {exc}", file=sys.stderr)
        return 2
    requirements.extend(r.strip() for r in args.requirements if r.strip())
    requirements = list(dict.fromkeys(requirements))  # once each, in order
    if not requirements:
        print("stratus fetch: no requirements (give -r FILE or REQUIREMENT ...)", file=sys.stderr)
        return 2
    try:
        repository = find_repository(args)
    except UploadError as exc:
        print(f"stratus fetch: {exc}", file=sys.stderr)
        return 2
    fetcher = Fetcher(Http(repository, parallel=1), wheel=args.wheel, prerelease=args.prerelease)
    progress = from_args(args)
    total = len(requirements)
    results: list[Outcome] = []
    refused: str | None = None
    for batch in _batches(requirements, max(1, min(args.batch, MAX_BATCH))):
        if refused is None:
            try:
                outcomes = fetcher.fetch(batch)
            except FetchError as exc:
                refused = str(exc)  # credentials or the server's setup: the rest fails too
            except Exception as exc:  # connection refused, timeouts (after urllib3's retries)
                outcomes = [
                    Outcome(line, reasons=[f"{type(exc).__name__}: {exc}"]) for line in batch
                ]
        if refused is not None:
            outcomes = [Outcome(line, reasons=[refused]) for line in batch]
        for outcome in outcomes:
            results.append(outcome)
            verb = "failed" if outcome.failed else "fetched"
            detail = "; ".join(outcome.reasons) if outcome.failed else ", ".join(outcome.files)
            progress.say(f"{verb} {len(results)}/{total}: {outcome.requirement}: {detail}")
    failed = [o for o in results if o.failed]
    files = sum(len(o.files) for o in results)
    print(f"{total - len(failed)} fetched ({files} files), {len(failed)} failed", flush=True)
    for outcome in failed:
        print(f"failed: {outcome.requirement}: {'; '.join(outcome.reasons)}", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .progress import add_arguments as progress_arguments

    cmd = sub.add_parser(
        "fetch",
        help="have an index cache requirements from its upstream (pypicloud's /api/fetch)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("requirements", nargs="*", metavar="REQUIREMENT", help="e.g. 'requests>=2'")
    cmd.add_argument(
        "-r", "--requirement", action="append", metavar="FILE", help="a requirements file (repeat)"
    )
    cmd.add_argument("--repository-url", help="the index's URL (its root, /simple/ or upload URL)")
    cmd.add_argument("--repository", help="a section of the .pypirc file")
    credential_arguments(cmd)
    cmd.add_argument(
        "--wheel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="wheels (the default) or, with --no-wheel, sdists",
    )
    cmd.add_argument("--prerelease", action="store_true", help="pre-releases may match")
    cmd.add_argument(
        "--batch",
        type=int,
        default=1,
        help=f"requirements per request (default 1, max {MAX_BATCH})",
    )
    progress_arguments(cmd)
    cmd.set_defaults(func=run)
