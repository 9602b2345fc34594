"""Build real, installable wheels and sdists for tests, offline and fast.

Sdists carry a tiny in-tree PEP 517 backend (``requires = []``), so pip and uv can
build them with build isolation and no index other than the one under test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import textwrap
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def _dist_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def core_metadata(
    name: str,
    version: str,
    *,
    requires_dist: tuple[str, ...] = (),
    requires_python: str | None = None,
    metadata_version: str = "2.3",
    summary: str = "A test package",
    headers: tuple[str, ...] = (),
    description: str | None = None,
) -> str:
    """A METADATA file; ``headers`` are extra ``Field: value`` lines, ``description`` the
    body (the long description)."""
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    lines += list(headers)
    return "\n".join(lines) + "\n\n" + (description or "")


def wheel_bytes(
    name: str,
    version: str,
    *,
    requires_dist: tuple[str, ...] = (),
    requires_python: str | None = None,
    module_body: str = "",
    summary: str = "A test package",
    metadata: bytes | None = None,
    headers: tuple[str, ...] = (),
    description: str | None = None,
) -> tuple[str, bytes]:
    """(filename, bytes) of a py3-none-any wheel with one module named after the project.

    ``metadata`` replaces the generated METADATA file (UTF-8 text otherwise).
    """
    dist = _dist_name(name)
    files = {
        f"{dist}/__init__.py": (module_body or f"VERSION = {version!r}\n").encode(),
        f"{dist}-{version}.dist-info/METADATA": metadata
        if metadata is not None
        else core_metadata(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            summary=summary,
            headers=headers,
            description=description,
        ).encode(),
        f"{dist}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: stratus-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n\n"
        ),
    }
    record_name = f"{dist}-{version}.dist-info/RECORD"
    record_lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{record_name},,")
    files[record_name] = ("\n".join(record_lines) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
    return f"{dist}-{version}-py3-none-any.whl", buf.getvalue()


_BACKEND = '''
"""In-tree PEP 517 backend: builds the wheel from PKG-INFO and the package folder."""
import base64, hashlib, os, zipfile

def _meta():
    with open("PKG-INFO", encoding="utf-8") as fh:
        text = fh.read()
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return text, fields["Name"], fields["Version"]

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    text, name, version = _meta()
    dist = name.lower().replace("-", "_").replace(".", "_")
    info = os.path.join(metadata_directory, f"{dist}-{version}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as fh:
        fh.write(text)
    return os.path.basename(info)

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    text, name, version = _meta()
    dist = name.lower().replace("-", "_").replace(".", "_")
    files = {}
    for root, _dirs, names in os.walk(dist):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as fh:
                files[p.replace(os.sep, "/")] = fh.read()
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = text.encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n\\n"
    )
    rec = []
    for p, d in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        rec.append(f"{p},sha256={h},{len(d)}")
    rec.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\\n".join(rec) + "\\n").encode()
    wheel = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return wheel
'''


def sdist_bytes(
    name: str,
    version: str,
    *,
    requires_dist: tuple[str, ...] = (),
    requires_python: str | None = None,
    metadata_version: str = "2.2",
    summary: str = "A test package",
    headers: tuple[str, ...] = (),
    description: str | None = None,
) -> tuple[str, bytes]:
    """(filename, bytes) of a buildable .tar.gz sdist (PEP 625 name)."""
    dist = _dist_name(name)
    base = f"{dist}-{version}"
    files = {
        "PKG-INFO": core_metadata(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            metadata_version=metadata_version,
            summary=summary,
            headers=headers,
            description=description,
        ),
        "pyproject.toml": textwrap.dedent(
            """\
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
            """
        ),
        "backend.py": _BACKEND,
        f"{dist}/__init__.py": f"VERSION = {version!r}\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{path}")
            info.size = len(data)
            info.mtime = 1577836800
            tf.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", buf.getvalue()


def write(directory: Path, built: tuple[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / built[0]
    path.write_bytes(built[1])
    return path


def write_wheel_with_payload(
    directory: Path,
    name: str,
    version: str,
    payload_size: int,
    *,
    seed: int | None = None,
    requires_python: str | None = None,
) -> Path:
    """A valid wheel holding one stored (uncompressed) member of ``payload_size`` bytes,
    written to ``directory`` without ever holding the payload: zeros (cheap, sparse-ish),
    or with ``seed`` pseudo-random bytes (so two such wheels differ)."""
    import random

    dist = _dist_name(name)
    info = f"{dist}-{version}.dist-info"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    block = 1024 * 1024
    rng = random.Random(seed) if seed is not None else None
    zero = bytes(block)
    record = []

    def digest_of(data_hash: hashlib._Hash) -> str:  # type: ignore[name-defined]
        return base64.urlsafe_b64encode(data_hash.digest()).rstrip(b"=").decode()

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        small = {
            f"{info}/METADATA": core_metadata(
                name, version, requires_python=requires_python
            ).encode(),
            f"{info}/WHEEL": (
                b"Wheel-Version: 1.0\nGenerator: stratus-tests\nRoot-Is-Purelib: true\n"
                b"Tag: py3-none-any\n\n"
            ),
        }
        for member, data in small.items():
            zf.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), data)
            record.append(f"{member},sha256={digest_of(hashlib.sha256(data))},{len(data)}")
        member = f"{dist}/payload.bin"
        payload_hash = hashlib.sha256()
        with zf.open(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), "w", force_zip64=True) as out:
            left = payload_size
            while left:
                n = min(block, left)
                chunk = rng.randbytes(n) if rng is not None else zero[:n]
                payload_hash.update(chunk)
                out.write(chunk)
                left -= n
        record.append(f"{member},sha256={digest_of(payload_hash)},{payload_size}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(
            zipfile.ZipInfo(f"{info}/RECORD", (2020, 1, 1, 0, 0, 0)), "\n".join(record) + "\n"
        )
    return path
