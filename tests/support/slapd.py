"""A real OpenLDAP ``slapd`` (Debian package ``slapd``) on loopback for the LDAP access tests.

``slapd`` (session): one server on 127.0.0.1 and a free port, with its own throwaway
``slapd.conf`` and mdb database under the session's tmp dir, loaded with :func:`populate`
(the users of the §1.6.2 sample, an admin group, a service account, ...); stopped at the end.
``slapd_factory`` (function): starts extra private servers (same data) a test may stop and
restart, e.g. to see how a backend behaves while LDAP is down.

If the ``slapd`` binary is missing, the fixture installs the Debian packages once, non
interactively, preseeding debconf so the package does not configure (or start) a system
slapd on port 389; our servers never use the system configuration anyway. The same lines
for a machine setup script::

    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils

The directory (suffix ``dc=stratus,dc=test``)::

    ou=people    uid=<user> for every user of the sample (inetOrgPerson, {SSHA} passwords);
                 the sample's admins have ``employeeType: pypi-admin``
    ou=staff     cn=Robert Paulson (uid bob): a DN without the username, for search lookups;
                 cn=Twin One, cn=Twin Two: two entries with uid twin
    ou=groups    cn=pypi-admins (groupOfNames, the sample's admins; the memberof overlay
                 gives members ``memberOf``), cn=pypi-maintainers (groupOfUniqueNames, donlan)
    ou=services  cn=stratus-reader: the service account (reads everything but passwords)
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.contract.access_backends import ADMINS, PASSWORDS
from tests.support.processes import free_port

APT_PACKAGES = ("slapd", "ldap-utils")
DEBCONF_PRESEED = "slapd slapd/no_configuration boolean true\n"
INSTALL_HINT = (
    'echo "slapd slapd/no_configuration boolean true" | sudo debconf-set-selections && '
    "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils"
)
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIRS = (
    Path("/usr/lib/ldap"),
    Path("/usr/lib/x86_64-linux-gnu/ldap"),
    Path("/usr/lib64/openldap"),
)
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
STARTUP_TIMEOUT = 20.0

SUFFIX = "dc=stratus,dc=test"
ROOT_DN = f"cn=root,{SUFFIX}"
ROOT_PASSWORD = "slapd-root-secret"
PEOPLE_DN = f"ou=people,{SUFFIX}"
STAFF_DN = f"ou=staff,{SUFFIX}"
GROUPS_DN = f"ou=groups,{SUFFIX}"
SERVICES_DN = f"ou=services,{SUFFIX}"
SERVICE_DN = f"cn=stratus-reader,{SERVICES_DN}"
SERVICE_PASSWORD = "reader-secret"
ADMIN_GROUP_DN = f"cn=pypi-admins,{GROUPS_DN}"
UNIQUE_GROUP_DN = f"cn=pypi-maintainers,{GROUPS_DN}"
UNIQUE_GROUP_MEMBERS = ("donlan",)
ADMIN_TYPE = "pypi-admin"  # employeeType of the sample's admins
USER_DN_FORMAT = f"uid={{username}},{PEOPLE_DN}"
# Users outside ou=people: their DN does not hold the username (manual §1.6.4).
STAFF = {
    "Robert Paulson": ("bob", "fightclub"),
    "Twin One": ("twin", "one"),
    "Twin Two": ("twin", "two"),
}


def ssha(password: str) -> str:
    """``{SSHA}`` as slapd verifies it: base64(sha1(password + salt) + salt)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def user_dn(username: str) -> str:
    return USER_DN_FORMAT.format(username=username)


# --- installing ------------------------------------------------------------------------


def _find_slapd() -> str | None:
    found = shutil.which("slapd")
    if found:
        return found
    for candidate in ("/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/libexec/slapd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _run(command: list[str], env: dict[str, str], what: str, stdin: str | None = None) -> None:
    result = subprocess.run(command, env=env, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(
            f"could not install slapd ({what} exited {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\nInstall it by hand: {INSTALL_HINT}"
        )


def _apt_install() -> None:
    if os.geteuid() != 0:
        pytest.fail(f"slapd is not installed and the tests do not run as root: {INSTALL_HINT}")
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        pytest.fail(
            "slapd is not installed and there is no apt-get: install OpenLDAP's slapd and "
            "its core/cosine/inetorgperson/nis schemas"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # No debconf configuration means the package creates no database and starts no system
    # slapd on port 389.
    if shutil.which("debconf-set-selections"):
        _run(["debconf-set-selections"], env, "debconf-set-selections", stdin=DEBCONF_PRESEED)
    install = [apt_get, "install", "-y", "-q", *APT_PACKAGES]
    known = subprocess.run(["apt-cache", "show", "slapd"], capture_output=True, env=env)
    if known.returncode != 0:
        _run([apt_get, "update", "-q"], env, "apt-get update")
    first = subprocess.run(install, env=env, capture_output=True, text=True)
    if first.returncode != 0:  # stale package lists (404): refresh once and retry
        _run([apt_get, "update", "-q"], env, "apt-get update")
        _run(install, env, "apt-get install")
    _stop_system_slapd()


def _stop_system_slapd() -> None:
    """If the package started a system slapd anyway (a preconfigured machine), stop it."""
    pid_file = Path("/run/slapd/slapd.pid")
    if not pid_file.exists():
        return
    for command in (["invoke-rc.d", "slapd", "stop"], ["service", "slapd", "stop"]):
        if shutil.which(command[0]):
            subprocess.run(command, capture_output=True)
            return


def ensure_slapd() -> str:
    """The path of the ``slapd`` binary; installs the Debian packages once if missing."""
    found = _find_slapd()
    if found:
        return found
    lock_path = Path(tempfile.gettempdir()) / "stratus-slapd-install.lock"
    # One installer at a time (pytest-xdist workers start their sessions together).
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _find_slapd() is None:
                _apt_install()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    found = _find_slapd()
    if found is None:
        pytest.fail(f"slapd is still missing after apt-get install: {INSTALL_HINT}")
    return found


# --- one server ------------------------------------------------------------------------


def _module_dir() -> Path | None:
    for directory in MODULE_DIRS:
        if any(directory.glob("back_mdb*")):
            return directory
    return None


def _config(workdir: Path) -> str:
    missing = [s for s in SCHEMAS if not (SCHEMA_DIR / f"{s}.schema").is_file()]
    if missing:
        pytest.fail(f"slapd schemas {missing} not found in {SCHEMA_DIR}: {INSTALL_HINT}")
    lines = [f"include {SCHEMA_DIR / f'{s}.schema'}" for s in SCHEMAS]
    modules = _module_dir()
    if modules is not None:  # Debian builds backends and overlays as modules
        lines += [f"modulepath {modules}", "moduleload back_mdb", "moduleload memberof"]
    lines += [
        # Accept unauthenticated binds (a DN with an empty password succeeds, as anonymous),
        # as many servers do (Active Directory, older OpenLDAP setups): the backend must
        # refuse empty passwords itself, and the tests check it does against such a server.
        "allow bind_anon_dn",
        f"pidfile {workdir / 'slapd.pid'}",
        f"argsfile {workdir / 'slapd.args'}",
        "database mdb",
        "maxsize 16777216",
        f'suffix "{SUFFIX}"',
        f'rootdn "{ROOT_DN}"',
        f"rootpw {ssha(ROOT_PASSWORD)}",
        f"directory {workdir / 'db'}",
        # Passwords: only usable to bind. Everything else: readable by bound users (the
        # service account), nothing for anonymous clients.
        "access to attrs=userPassword by anonymous auth by self write by * none",
        "access to * by users read by * none",
        "overlay memberof",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Slapd:
    """One slapd process with its own config and database under ``workdir``."""

    workdir: Path
    binary: str = field(default_factory=ensure_slapd)
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "slapd.log"

    def start(self) -> None:
        """Start (or restart, on the same port and data) the server; wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            return
        (self.workdir / "db").mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "slapd.conf"
        if not conf.exists():
            conf.write_text(_config(self.workdir))
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            port = self.port or free_port()
            if self._launch(conf, port):
                self.port = port
                return
        pytest.fail(f"slapd did not start:\n{self.log.read_text(errors='replace')[-4000:]}")

    def _launch(self, conf: Path, port: int) -> bool:
        from ldap3.core.exceptions import LDAPException

        with open(self.log, "ab") as out:
            # -d 0: stay in the foreground (no fork), so this process is the server.
            self.process = subprocess.Popen(
                [self.binary, "-f", str(conf), "-h", f"ldap://{self.host}:{port}/", "-d", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # port taken, bad config: the caller retries or fails with the log
            try:
                with socket.create_connection((self.host, port), timeout=0.5):
                    pass
                self.port = port
                self.admin_connection().unbind()
                return True
            except (OSError, LDAPException):  # not listening, or not answering binds, yet
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # slapd shuts down cleanly on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def admin_connection(self):
        """An ldap3 connection bound as the rootdn (bypasses the ACLs), to load or change data."""
        from ldap3 import Connection, Server

        server = Server(self.host, port=self.port, connect_timeout=2)
        return Connection(
            server,
            user=ROOT_DN,
            password=ROOT_PASSWORD,
            auto_bind=True,
            receive_timeout=10,
            raise_exceptions=True,
        )


def populate(server: Slapd) -> None:
    """Load the directory described in the module docstring."""
    conn = server.admin_connection()
    try:

        def add(dn: str, classes: list[str], attrs: dict[str, object]) -> None:
            conn.add(dn, classes, attrs)

        add(SUFFIX, ["dcObject", "organization"], {"dc": "stratus", "o": "Stratus tests"})
        for dn in (PEOPLE_DN, STAFF_DN, GROUPS_DN, SERVICES_DN):
            add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0].split("=")[1]})
        add(
            SERVICE_DN,
            ["organizationalRole", "simpleSecurityObject"],
            {"cn": "stratus-reader", "userPassword": ssha(SERVICE_PASSWORD)},
        )
        for username, password in PASSWORDS.items():
            attrs: dict[str, object] = {
                "uid": username,
                "cn": username,
                "sn": username,
                "userPassword": ssha(password),
            }
            if username in ADMINS:
                attrs["employeeType"] = ADMIN_TYPE
            add(user_dn(username), ["inetOrgPerson"], attrs)
        for cn, (uid, password) in STAFF.items():
            attrs = {"uid": uid, "cn": cn, "sn": cn.split()[-1], "userPassword": ssha(password)}
            add(f"cn={cn},{STAFF_DN}", ["inetOrgPerson"], attrs)
        add(
            ADMIN_GROUP_DN,
            ["groupOfNames"],
            {"cn": "pypi-admins", "member": [user_dn(name) for name in ADMINS]},
        )
        add(
            UNIQUE_GROUP_DN,
            ["groupOfUniqueNames"],
            {"cn": "pypi-maintainers", "uniqueMember": [user_dn(n) for n in UNIQUE_GROUP_MEMBERS]},
        )
    finally:
        conn.unbind()


def start_populated(workdir: Path) -> Slapd:
    server = Slapd(workdir)
    server.start()
    try:
        populate(server)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A running, populated slapd for the whole session. Tests must not stop it."""
    server = start_populated(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slapd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Slapd]]:
    """Start private populated servers a test may stop and restart; all stopped afterwards."""
    servers: list[Slapd] = []

    def make() -> Slapd:
        server = start_populated(tmp_path_factory.mktemp("slapd-private"))
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
