"""``POST /api/fetch`` (pypicloud §1.10.2) and pypicache's ``POST /requirements.txt``:
cache the best upstream match of every requirement of a requirements.txt.

Requirements, specifiers and markers are ``packaging``'s. Per requirement the newest
version that satisfies the specifier is chosen, yanked files left out (PEP 592) and
pre-releases only with ``prerelease`` (or when the specifier names one). Of that version:
with ``wheel`` its wheels (the pure ``none-any`` one if there is one, else every
platform's, the server not knowing the client's), otherwise its sdist; each falls back to
the other kind. Lines with options (``-r``, ``--index-url``), direct URLs and markers
that do not hold here are reported as failed, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..domain.errors import InvalidInput, StratusError, UpstreamError
from ..domain.models import Identity
from ..domain.upstream import FillJob, UpstreamFile
from .fill import Filler
from .upstream import UpstreamPages

MAX_TEXT = 64 * 1024
MAX_REQUIREMENTS = 200
MAX_FILES_PER_REQUIREMENT = 64


@dataclass
class FetchReport:
    fetched: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[dict[str, str]]]:
        return {"fetched": self.fetched, "failed": self.failed}


def requirement_lines(
    text: str, *, max_text: int | None = MAX_TEXT, max_lines: int | None = MAX_REQUIREMENTS
) -> list[str]:
    """The logical lines of a requirements.txt: comments dropped, continuations joined,
    per-requirement options (``--hash``) cut off (``InvalidInput`` past the limits; None:
    no limit, for a client's own files)."""
    if max_text is not None and len(text) > max_text:
        raise InvalidInput(f"requirements: at most {max_text} characters")
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("-"):
            line = line.split(" --", 1)[0].strip()  # pip's per-requirement --hash=...
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    if max_lines is not None and len(lines) > max_lines:
        raise InvalidInput(f"requirements: at most {max_lines} requirements")
    return lines


def _version(file: UpstreamFile) -> Version | None:
    try:
        return Version(file.version)
    except InvalidVersion:
        return None


def choose(
    requirement: Requirement, files: tuple[UpstreamFile, ...], *, wheel: bool, prerelease: bool
) -> list[UpstreamFile]:
    """The files to cache for one requirement (empty: nothing matches)."""
    pinned = any(spec.operator in ("==", "===") for spec in requirement.specifier)
    allow_pre = prerelease or bool(requirement.specifier.prereleases)
    by_version: dict[Version, list[UpstreamFile]] = {}
    for f in files:
        version = _version(f)
        if version is None or (f.yanked is not None and not pinned):
            continue
        if version.is_prerelease and not allow_pre:
            continue
        if requirement.specifier.contains(version, prereleases=True):
            by_version.setdefault(version, []).append(f)
    if not by_version:
        return []
    best = by_version[max(by_version)]
    wheels = [f for f in best if f.filename.endswith(".whl")]
    sdists = [f for f in best if not f.filename.endswith(".whl")]
    if wheel and wheels:
        pure = [f for f in wheels if f.filename.endswith("-none-any.whl")]
        return (pure[:1] or wheels)[:MAX_FILES_PER_REQUIREMENT]
    return sdists[:1] or wheels[:MAX_FILES_PER_REQUIREMENT]


def fetch_requirements(
    text: str,
    who: Identity,
    *,
    pages: UpstreamPages,
    filler: Filler,
    may_read: Callable[[str], bool],
    wheel: bool = True,
    prerelease: bool = False,
) -> FetchReport:
    """Cache the best match of each requirement (queued on AWS); report each outcome."""
    report = FetchReport()
    for line in requirement_lines(text):

        def failed(reason: str, line: str = line) -> None:
            report.failed.append({"requirement": line, "reason": reason})

        if line.startswith("-"):
            failed("options (-r, -e, --index-url, ...) are not fetched")
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            failed(f"not a valid requirement: {exc}")
            continue
        if requirement.url:
            failed("direct references (name @ url) are not fetched")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            failed(f"the marker {requirement.marker} does not hold on this server")
            continue
        project = canonicalize_name(requirement.name)
        if not may_read(project):
            failed(f"you may not read {project}")
            continue
        try:
            page = pages.get(project)
        except UpstreamError as exc:
            failed(str(exc))
            continue
        chosen = choose(requirement, page.files, wheel=wheel, prerelease=prerelease)
        if not page.exists or not chosen:
            failed(f"no file of {project} on the upstream matches {requirement.specifier or '*'}")
            continue
        for file in chosen:
            try:
                job = FillJob.for_file(project, file, who.username)
                if filler.check(job) is not None:
                    status = "stored"
                elif filler.queued:
                    status = "queued" if filler.dispatch(job) else "in progress"
                else:
                    filler.transfer(job)  # checked just above
                    status = "fetched"
            except StratusError as exc:  # blocked, local file of the name, upstream failed...
                failed(f"{file.filename}: {exc}")
                continue
            report.fetched.append(
                {
                    "requirement": line,
                    "project": project,
                    "version": file.version,
                    "filename": file.filename,
                    "status": status,
                }
            )
    return report
