"""``stratus upload``: publish distributions of any size to a Stratus index.

Small files (up to ``--legacy-max-bytes``) go to the legacy upload API, as twine sends
them. Larger ones use upload sessions: the client declares the file (name, version,
filename, size, sha256), sends the bytes straight to storage (presigned S3 URLs on AWS,
the local server's upload URLs otherwise) — one request, or parts in parallel above the
server's multipart threshold — and asks the index to complete the session, which checks
the file where it lies and publishes it.

Resuming: the session of a file (found by its sha256 and the repository) is kept in a
state file under ``--state-dir`` with the parts sent so far; running the same command
again after an interruption asks the index which parts it has and sends only the rest.

Credentials as twine finds them: ``-u``/``-p``, ``TWINE_USERNAME``/``TWINE_PASSWORD``,
the ``~/.pypirc`` section named by ``-r`` (or whose ``repository`` is the URL), the
keyring (if the ``keyring`` package is installed), then a prompt on a terminal.

HTTP: urllib3 (already installed with botocore; a thread-safe connection pool for the
parallel parts; streams file slices without reading them into memory).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import contextlib
import getpass
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

SESSIONS_PATH = "_/upload-sessions/"
DEFAULT_LEGACY_MAX = 4_000_000  # under the Lambda deployment's legacy upload limit
# Parts in flight: one connection to S3 carries some 50-100 MB/s, so several are needed to
# fill a link (boto3's transfers use 10); 8 keeps 8 x 64 MiB parts' worth of URLs in hand.
DEFAULT_PARALLEL = 8
BLOCK = 1024 * 1024
PART_ATTEMPTS = 4
MAX_PART_URLS = 100
SAY_EVERY = 30.0  # seconds between two "still checking" lines while the index checks
RECOMPLETE_EVERY = 60.0  # seconds between two completions of a session still processing


class UploadError(Exception):
    """A failed upload: the message says what the index answered."""


class Skipped(Exception):
    """The file exists in the index and ``--skip-existing`` was given."""


# --- credentials -------------------------------------------------------------------------


@dataclass
class Repository:
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def _pypirc(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    if path.is_file():
        parser.read(path)
    return parser


def _section_for(parser: configparser.RawConfigParser, name: str | None, url: str | None):
    if name:
        if not parser.has_section(name):
            raise UploadError(f"no [{name}] section in the .pypirc file")
        return parser[name]
    if url:
        for section in parser.sections():
            if parser[section].get("repository", "").rstrip("/") == url.rstrip("/"):
                return parser[section]
    return None


def find_repository(
    args: argparse.Namespace,
    environ: dict[str, str] | os._Environ[str] = os.environ,
    *,
    interactive: bool | None = None,
) -> Repository:
    """The repository URL and credentials, found as twine finds them."""
    config = Path(args.config_file).expanduser() if args.config_file else Path("~/.pypirc")
    parser = _pypirc(config.expanduser())
    url = args.repository_url or environ.get("TWINE_REPOSITORY_URL")
    section = _section_for(parser, args.repository or environ.get("TWINE_REPOSITORY"), url)
    if not url and section is not None:
        url = section.get("repository")
    if not url:
        raise UploadError(
            "no repository: give --repository-url URL (or --repository NAME of a .pypirc)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UploadError(f"{url!r} is not an http(s) URL")
    in_url_user, in_url_password = parts.username, parts.password
    if in_url_user is not None:  # credentials in the URL: use them, keep them out of logs
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    username = (
        args.username
        or environ.get("TWINE_USERNAME")
        or (section.get("username") if section is not None else None)
        or in_url_user
    )
    password = (
        args.password
        or environ.get("TWINE_PASSWORD")
        or (section.get("password") if section is not None else None)
        or in_url_password
    )
    if interactive is None:
        interactive = sys.stdin.isatty()
    if username and not password:
        password = _from_keyring(url, username)
    if username and not password and interactive:
        password = getpass.getpass(f"Password for {username} at {url}: ")
    if not username and interactive and not args.non_interactive:
        username = input(f"Username for {url} (empty: anonymous): ").strip() or None
        if username:
            password = _from_keyring(url, username) or getpass.getpass("Password: ")
    return Repository(url=url, username=username, password=password)


def _from_keyring(url: str, username: str) -> str | None:
    try:
        import keyring
    except ImportError:
        return None
    try:
        return keyring.get_password(url, username)
    except Exception:  # a broken keyring backend must not stop an upload
        return None


def index_root(url: str) -> str:
    """The index's root URL (ending in ``/``) of a repository URL, which may name the
    upload API (``.../legacy/``) or the simple index (``.../simple/``)."""
    base = url if url.endswith("/") else url + "/"
    for suffix in ("legacy/", "simple/"):
        if base.endswith("/" + suffix):
            base = base[: -len(suffix)]
    return base


# --- HTTP ----------------------------------------------------------------------------------


class Http:
    """urllib3 with the index's credentials for index URLs (never for storage URLs)."""

    def __init__(self, repository: Repository, *, parallel: int) -> None:
        import urllib3

        self.pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=max(parallel, 2),
            retries=urllib3.Retry(total=3, backoff_factor=0.5, allowed_methods=None),
            timeout=urllib3.Timeout(connect=15, read=300),
            blocksize=BLOCK,
        )
        self.repository = repository
        self.index_host = urlsplit(repository.url).netloc
        self.auth: dict[str, str] = {}
        if repository.username is not None:
            token = f"{repository.username}:{repository.password or ''}".encode()
            self.auth = {"Authorization": "Basic " + base64.b64encode(token).decode()}

    def index(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"User-Agent": "stratus-upload", **kwargs.pop("headers", {})}
        if urlsplit(url).netloc == self.index_host:
            headers.update(self.auth)
        return self.pool.request(method, url, headers=headers, **kwargs)

    def json(self, method: str, url: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.index(method, url, body=body, headers=headers)

    def put_bytes(self, url: str, body: Any, length: int, headers: dict[str, str]) -> Any:
        """A storage request: no index credentials, no retries (the caller repeats it)."""
        all_headers = {**headers, "Content-Length": str(length)}
        return self.pool.request("PUT", url, body=body, headers=all_headers, retries=False)


def _text(response: Any) -> str:
    data = response.data.decode("utf-8", "replace").strip()
    return data[:2000] or f"{response.status} (no message)"


def _document(response: Any) -> dict[str, Any]:
    try:
        found = json.loads(response.data)
    except ValueError:
        raise UploadError(f"the index answered {response.status}: {_text(response)}") from None
    if not isinstance(found, dict):
        raise UploadError(f"the index answered {response.status} with unexpected JSON")
    return found


# --- files ---------------------------------------------------------------------------------


@dataclass
class Distribution:
    path: Path
    filename: str
    name: str
    version: str
    size: int
    sha256: str
    filetype: str


def describe(path: Path) -> Distribution:
    from ..domain import distributions, metadata
    from ..domain.errors import InvalidInput

    try:
        dist = distributions.parse(path.name)
        with open(path, "rb") as fh:
            meta = metadata.extract_from(fh, dist)
    except InvalidInput as exc:
        raise UploadError(str(exc)) from None
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
    return Distribution(
        path=path,
        filename=path.name,
        name=meta.name or dist.project,
        version=meta.version or str(dist.version),
        size=path.stat().st_size,
        sha256=digest.hexdigest(),
        filetype=dist.kind,
    )


class FileSlice:
    """``length`` bytes of a file from ``offset``, read as it is sent (with progress)."""

    def __init__(
        self, path: Path, offset: int, length: int, progress: Callable[[int], None]
    ) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        self._left = length
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(wanted)
        self._left -= len(data)
        self._progress(len(data))
        return data

    def close(self) -> None:
        self._file.close()


class Progress:
    """One bar per file (tqdm), fed from several threads; rewound when a part is resent."""

    def __init__(self, dist: Distribution, enabled: bool) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self.bar = tqdm(
            total=dist.size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dist.filename,
            disable=not enabled,
            file=sys.stderr,
            leave=True,
        )

    def __call__(self, n: int) -> None:
        with self._lock:
            self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


# --- resumable state ---------------------------------------------------------------------


class State:
    """The session of one file at one repository, and the parts sent: a small JSON file."""

    def __init__(self, folder: Path, repository_url: str, dist: Distribution) -> None:
        key = hashlib.sha256(f"{repository_url}\0{dist.filename}\0{dist.sha256}".encode())
        self.path = folder / f"{key.hexdigest()[:32]}.json"
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self.data = loaded

    @property
    def session_url(self) -> str | None:
        value = self.data.get("session")
        return value if isinstance(value, str) else None

    def start(self, session_url: str, filename: str) -> None:
        self.data = {"session": session_url, "filename": filename, "parts": []}
        self.save()

    def part_done(self, number: int) -> None:
        with self._lock:
            parts = set(self.data.get("parts", []))
            parts.add(number)
            self.data["parts"] = sorted(parts)
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.data = {}
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def default_state_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stratus" / "uploads"


# --- the uploader --------------------------------------------------------------------------


class Uploader:
    def __init__(
        self,
        http: Http,
        *,
        parallel: int = DEFAULT_PARALLEL,
        legacy_max: int = DEFAULT_LEGACY_MAX,
        state_dir: Path | None = None,
        progress: bool = True,
        skip_existing: bool = False,
        poll_seconds: float = 2.0,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    ) -> None:
        self.http = http
        self.parallel = max(1, parallel)
        self.legacy_max = legacy_max
        self.state_dir = state_dir or default_state_dir()
        self.progress = progress
        self.skip_existing = skip_existing
        self.poll_seconds = poll_seconds
        self.log = log
        self.root = index_root(http.repository.url)
        self.sessions_url = urljoin(self.root, SESSIONS_PATH)

    def upload(self, path: Path) -> str:
        """Upload one file; the final message. Raises ``UploadError`` / ``Skipped``."""
        dist = describe(path)
        state = State(self.state_dir, self.http.repository.url, dist)
        if dist.size <= self.legacy_max and state.session_url is None:
            return self._legacy(dist)
        return self._session(dist, state)

    # --- legacy ---

    def _legacy(self, dist: Distribution) -> str:
        from urllib3 import encode_multipart_formdata

        fields: list[tuple[str, Any]] = [
            (":action", "file_upload"),
            ("protocol_version", "1"),
            ("name", dist.name),
            ("version", dist.version),
            ("filetype", dist.filetype),
            ("sha256_digest", dist.sha256),
            ("content", (dist.filename, dist.path.read_bytes(), "application/octet-stream")),
        ]
        body, content_type = encode_multipart_formdata(fields)
        progress = Progress(dist, self.progress)
        try:
            response = self.http.index(
                "POST", self.http.repository.url, body=body, headers={"Content-Type": content_type}
            )
            progress(dist.size)
        finally:
            progress.close()
        if response.status == 200:
            return f"{dist.filename}: published"
        self._refused(dist, response)
        raise AssertionError("unreachable")

    def _refused(self, dist: Distribution, response: Any) -> None:
        if response.status == 409 and self.skip_existing:
            raise Skipped(f"{dist.filename}: exists already, skipped")
        raise UploadError(f"{dist.filename}: {_text(response)}")

    # --- sessions ---

    def _session(self, dist: Distribution, state: State) -> str:
        doc = self._resume(state) if state.session_url else None
        if doc is None:
            response = self.http.json(
                "POST",
                self.sessions_url,
                {
                    "meta": {"api-version": "2.0"},
                    "name": dist.name,
                    "version": dist.version,
                    "filename": dist.filename,
                    "size": dist.size,
                    "hashes": {"sha256": dist.sha256},
                },
            )
            if response.status != 201:
                self._refused(dist, response)
            doc = _document(response)
            state.start(doc["urls"]["session"], dist.filename)
        else:
            self.log(f"{dist.filename}: resuming the upload session")
        return self._finish(dist, state, doc)

    def _resume(self, state: State) -> dict[str, Any] | None:
        """The stored session's status, or None (start anew) if it is gone or failed."""
        assert state.session_url is not None
        response = self.http.json("GET", state.session_url)
        if response.status != 200:
            state.clear()
            return None
        doc = _document(response)
        if doc.get("status") in ("pending", "processing", "published"):
            return doc
        state.clear()
        return None

    def _finish(self, dist: Distribution, state: State, doc: dict[str, Any]) -> str:
        progress = Progress(dist, self.progress and doc.get("status") == "pending")
        try:
            for _ in range(3):  # send, complete; again if the index still misses parts
                if doc.get("status") == "pending":
                    self._send(dist, state, doc, progress)
                    doc = self._complete(dist, doc)
                if doc.get("status") == "processing":
                    doc = self._wait(dist, doc)
                if doc.get("status") == "published":
                    state.clear()
                    return f"{dist.filename}: published"
            raise UploadError(f"{dist.filename}: the upload did not complete")
        except UploadError:
            if doc.get("status") == "error":
                state.clear()
            raise
        finally:
            progress.close()

    def _send(
        self, dist: Distribution, state: State, doc: dict[str, Any], progress: Progress
    ) -> None:
        parts = doc.get("parts")
        if not parts:  # one request for the whole file
            target = doc.get("upload")
            if target is None:
                raise UploadError(f"{dist.filename}: the index gave no upload URL")
            self._put(dist, target, 0, dist.size, progress, accept_existing=True)
            return
        have = set(parts.get("uploaded", []))
        progress(sum(self._part_length(dist, parts, n) for n in have))
        missing = [n for n in range(1, parts["count"] + 1) if n not in have]

        def send(target: dict[str, Any]) -> None:
            number = int(target["number"])
            offset = (number - 1) * int(parts["size"])
            self._put(dist, target, offset, int(target["size"]), progress)
            state.part_done(number)

        # One pool for every part: the URLs of the next batch are asked for while the last
        # parts of this one are still in flight (never a pause between batches), and only
        # then (URLs expire: none is fetched long before its part is sent).
        pending: set[Future[None]] = set()
        with ThreadPoolExecutor(self.parallel) as pool:
            try:
                for start in range(0, len(missing), MAX_PART_URLS):
                    while len(pending) > self.parallel:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()  # the first failure stops the upload
                    targets = self._part_urls(dist, doc, missing[start : start + MAX_PART_URLS])
                    pending |= {pool.submit(send, t) for t in targets}
                for future in pending:
                    future.result()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    @staticmethod
    def _part_length(dist: Distribution, parts: dict[str, Any], number: int) -> int:
        size = int(parts["size"])
        return min(size, dist.size - (number - 1) * size)

    def _part_urls(
        self, dist: Distribution, doc: dict[str, Any], numbers: list[int]
    ) -> list[dict[str, Any]]:
        response = self.http.json("POST", doc["urls"]["part-urls"], {"parts": numbers})
        if response.status != 200:
            raise UploadError(f"{dist.filename}: {_text(response)}")
        return list(_document(response)["parts"])

    def _put(
        self,
        dist: Distribution,
        target: dict[str, Any],
        offset: int,
        length: int,
        progress: Progress,
        *,
        accept_existing: bool = False,
    ) -> None:
        url = target["url"]
        last = ""
        for attempt in range(PART_ATTEMPTS):
            sent = [0]

            def count(n: int, sent: list[int] = sent) -> None:
                sent[0] += n
                progress(n)

            body = FileSlice(dist.path, offset, length, count)
            try:
                response = self.http.put_bytes(url, body, length, dict(target.get("headers", {})))
            except Exception as exc:  # connection reset, timeout: send the part again
                response, last = None, f"{type(exc).__name__}: {exc}"
            finally:
                body.close()
            progress(-sent[0])  # what went out is counted once it is accepted
            if response is not None:
                if response.status in (200, 201, 204):
                    progress(length)
                    return
                if response.status == 412 and accept_existing:  # sent before, answer lost
                    progress(length)
                    return
                last = f"{response.status}: {_text(response)[:300]}"
                if response.status in (400, 404) or (403 <= response.status < 500 and attempt):
                    break  # refused bytes, or an expired/invalid URL after a retry
            time.sleep(min(2**attempt, 10))
        raise UploadError(f"{dist.filename}: storage refused the upload ({last})")

    def _complete(self, dist: Distribution, doc: dict[str, Any]) -> dict[str, Any]:
        response = self.http.json("POST", doc["urls"]["complete"])
        if response.status in (200, 202):
            return _document(response)
        if response.status == 400 and "missing" in _text(response).lower():
            refreshed = self.http.json("GET", doc["urls"]["session"])
            if refreshed.status == 200:
                return _document(refreshed)  # pending: send what is missing, then again
        self._refused(dist, response)
        raise AssertionError("unreachable")

    def _wait(self, dist: Distribution, doc: dict[str, Any]) -> dict[str, Any]:
        """Poll a ``processing`` session until it ends. Large files are checked in the
        background (minutes for many GB): say so now and then. Every ``RECOMPLETE_EVERY``
        seconds the session is completed again instead, which queues it anew if the
        index's worker died (and is answered 202 while it is still at work)."""
        started = last_said = last_completed = time.monotonic()
        self.log(f"{dist.filename}: the index is checking the file")
        while doc.get("status") == "processing":
            time.sleep(self.poll_seconds)
            now = time.monotonic()
            if now - last_completed >= RECOMPLETE_EVERY:
                last_completed = now
                response = self.http.json("POST", doc["urls"]["complete"])
                if response.status not in (200, 202):
                    self._refused(dist, response)
            else:
                response = self.http.json("GET", doc["urls"]["session"])
                if response.status != 200:
                    raise UploadError(f"{dist.filename}: {_text(response)}")
            doc = _document(response)
            if now - last_said >= SAY_EVERY and doc.get("status") == "processing":
                last_said = now
                self.log(f"{dist.filename}: still checking ({now - started:.0f} s)")
        if doc.get("status") == "error":
            raise UploadError(f"{dist.filename}: {doc.get('message') or 'the upload failed'}")
        for notice in doc.get("notices") or []:
            self.log(f"{dist.filename}: {notice}")
        return doc


# --- the command ---------------------------------------------------------------------------


def _expand(patterns: list[str]) -> Iterator[Path]:
    import glob

    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or [pattern]
        for match in matches:
            path = Path(match)
            if path.name.endswith((".whl", ".tar.gz", ".zip")):
                yield path


def run(args: argparse.Namespace) -> int:
    try:
        repository = find_repository(args)
    except UploadError as exc:
        print(f"stratus upload: {exc}", file=sys.stderr)
        return 2
    files = list(_expand(args.dists))
    if not files:
        print("stratus upload: no distributions (.whl, .tar.gz, .zip) given", file=sys.stderr)
        return 2
    uploader = Uploader(
        Http(repository, parallel=args.parallel),
        parallel=args.parallel,
        legacy_max=args.legacy_max_bytes,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        progress=not args.no_progress and sys.stderr.isatty(),
        skip_existing=args.skip_existing,
    )
    failed = 0
    for path in files:
        if not path.is_file():
            print(f"stratus upload: {path}: no such file", file=sys.stderr)
            failed += 1
            continue
        try:
            print(uploader.upload(path))
        except Skipped as exc:
            print(str(exc))
        except UploadError as exc:
            print(f"stratus upload: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def credential_arguments(cmd: argparse.ArgumentParser) -> None:
    """The options ``find_repository`` reads besides the URL and the .pypirc section."""
    cmd.add_argument("--config-file", help="the .pypirc file (default ~/.pypirc)")
    cmd.add_argument("-u", "--username")
    cmd.add_argument("-p", "--password")
    cmd.add_argument("--non-interactive", action="store_true", help="never prompt")


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "upload",
        help="upload distributions of any size (like twine upload; resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("dists", nargs="+", help="files or globs (dist/*)")
    cmd.add_argument("--repository-url", help="the index's upload URL (twine's)")
    cmd.add_argument("-r", "--repository", help="a section of the .pypirc file")
    credential_arguments(cmd)
    cmd.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        help=f"parts in flight (default {DEFAULT_PARALLEL})",
    )
    cmd.add_argument(
        "--legacy-max-bytes",
        type=int,
        default=DEFAULT_LEGACY_MAX,
        help=f"larger files use upload sessions (default {DEFAULT_LEGACY_MAX})",
    )
    cmd.add_argument("--state-dir", help="resume state (default ~/.cache/stratus/uploads)")
    cmd.add_argument("--skip-existing", action="store_true", help="a file already there is ok")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmd.set_defaults(func=run)
