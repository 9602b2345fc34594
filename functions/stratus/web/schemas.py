"""Request and response bodies of the JSON APIs, with pypicloud's field names (§1.10).

They drive both validation and ``/openapi.json``. Request bodies come as form fields or
a JSON object, as pypicloud's views take them (see ``web.bodies``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

Permission = Literal["read", "write"]


# --- requests ---


class PasswordBody(BaseModel):
    password: str = Field(description="The new user's password (8 characters or more).")


class RegisterBody(PasswordBody):
    token: str | None = Field(None, description="A registration token from /admin/token/.")


class ChangePasswordBody(BaseModel):
    old_password: str
    new_password: str


class AllowBody(BaseModel):
    allow: bool = Field(description="Whether new users may register.")


class AdminFlagBody(BaseModel):
    admin: bool = Field(description="True promotes to admin, false demotes.")


class YankBody(BaseModel):
    reason: str = Field("", description="Why the file is yanked (PEP 592).")


class NewTokenBody(BaseModel):
    name: str = Field("", description="A label for the token.")
    username: str | None = Field(None, description="Owner (admins only); default: the caller.")
    projects: list[str] | None = Field(
        None,
        description="Limit the token to uploading these projects "
        "(a list, or a string separated by commas or spaces).",
    )
    expires_in: float | None = Field(
        None,
        gt=0,
        le=10 * 365 * 86400,
        allow_inf_nan=False,
        description="Lifetime in seconds (at most ten years). Left out, a token made with "
        "an expiring token expires with it; otherwise it never expires.",
    )
    admin: bool | None = Field(
        None,
        description="false: a token without admin rights (of an admin user, say); true: "
        "ask for them (admin credentials only). Left out: the creating credential's rights. "
        "A token limited to projects never has admin rights.",
    )
    capabilities: list[str] | None = Field(
        None,
        description="What the token may do, a subset of read, upload, manage (own tokens "
        "and password), admin (a list, or a string separated by commas or spaces). Left "
        "out: all the creating credential has; read and upload for a scoped token.",
    )

    @field_validator("projects", "capabilities", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in re.split(r"[\s,]+", value) if p] or None
        return value

    @field_validator("username", "expires_in", "admin", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:  # an empty form field means "not given"
        return None if isinstance(value, str) and not value.strip() else value


# --- packages API (§1.10.1-1.10.2) ---


class PackageNames(BaseModel):
    packages: list[str]


class PackageSummary(BaseModel):
    name: str
    stable: str | None
    unstable: str | None
    last_modified: int


class PackageSummaries(BaseModel):
    packages: list[PackageSummary]


class PackageFile(BaseModel):
    name: str
    filename: str
    last_modified: int
    version: str
    url: str
    yanked: str | None = Field(description="None: not yanked; otherwise the reason (or '').")


class PackageVersions(BaseModel):
    packages: list[PackageFile]
    write: bool = Field(description="Whether the caller may upload to or delete from it.")


class Deleted(BaseModel):
    deleted: str


class YankState(BaseModel):
    filename: str
    yanked: str | None


class PypiFile(BaseModel):
    filename: str
    url: str
    packagetype: str
    size: int
    upload_time: str
    upload_time_iso_8601: str
    digests: dict[str, str | None]
    md5_digest: str | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None


class PypiInfo(BaseModel):
    name: str
    version: str
    summary: str | None
    requires_python: str | None
    package_url: str


class PypiProject(BaseModel):
    info: PypiInfo
    releases: dict[str, list[PypiFile]]
    urls: list[PypiFile]


# --- users and tokens ---


class Registered(BaseModel):
    username: str
    status: Literal["admin", "approved", "pending"]


class PasswordChanged(BaseModel):
    username: str
    changed: bool


class Token(BaseModel):
    id: str
    name: str
    username: str
    created: int
    expires: int | None
    projects: list[str] | None
    capabilities: list[str] = Field(description="Subset of read, upload, manage, admin.")


class NewToken(Token):
    token: str = Field(description="The secret; shown once.")


class TokenList(BaseModel):
    tokens: list[Token]


class Revoked(BaseModel):
    revoked: str


# --- admin API (§1.10.3) ---


class UserSummary(BaseModel):
    username: str
    admin: bool


class UserDetail(UserSummary):
    groups: list[str]


class PackagePermissions(BaseModel):
    package: str
    permissions: list[Permission]


class GroupDetail(BaseModel):
    members: list[str]
    packages: list[PackagePermissions]


class UserPermissions(BaseModel):
    username: str
    permissions: list[Permission]


class GroupPermissions(BaseModel):
    group: str
    permissions: list[Permission]


class PackageAclBody(BaseModel):
    user: list[UserPermissions]
    group: list[GroupPermissions]


class SignupToken(BaseModel):
    token: str
    token_url: str


class RebuildStatus(BaseModel):
    """A reconcile run started by ``/admin/rebuild/`` (counts so far; final when complete)."""

    run_id: str
    state: Literal["queued", "running", "complete", "failed"]
    status_url: str
    dry_run: bool
    deep: bool
    started: float
    updated: float
    pages: int
    projects: int
    objects: int
    entries: int
    added: int
    updated_files: int
    removed: int
    metadata_written: int
    skipped: int
    repairs: int
    error: str | None = None
