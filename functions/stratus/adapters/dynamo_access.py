"""Mutable access control on DynamoDB (pynamodb), in the catalog's single table.

Item layout (key attribute names from ``table_schema``; no key collides with the
catalog's ``P#<index>#<project>`` / ``PROJECTS#<index>`` partitions):

=====================  =====================  ===================  ========================
item                   pk                     sk                   attributes
=====================  =====================  ===================  ========================
user (or pending)      ``USERS``              ``U#<user>``         password_hash, admin,
                                                                   pending, rev
group                  ``GROUPS``             ``G#<group>``        rev
membership, user side  ``U#<user>``           ``G#<group>``
membership, group side ``G#<group>``          ``M#<user>``
permission             ``PKGACL#<project>``   ``U#<user>`` or      perms ("r", "w", "rw")
                                              ``G#<group>``
permission, mirror     ``U#<user>`` or        ``P#<project>``      perms
                       ``G#<group>``
permission, index      ``PKGACLS``            ``<project>#U#<u>``  perms
                                              or ``<project>#G#<g>``
token                  ``TOKEN#<token_id>``   ``TOKEN``            the TokenRecord fields
token, user's list     ``U#<user>``           ``T#<token_id>``     the TokenRecord fields
registration switch    ``ACCESS``             ``ALLOW_REGISTER``   value
first-admin claim      ``ACCESS``             ``FIRST_ADMIN``      username, rev
=====================  =====================  ===================  ========================

Access patterns, never a Scan: ``verify_user`` / ``is_admin`` / ``get_password_hash`` =
GetItem of the user; ``groups(user)`` = Query ``U#<user>`` (``G#``); ``package_acl`` =
Query ``PKGACL#<project>``; ``package_acls`` (the ACLs for listing ``/simple/``) = one
Query of ``PKGACLS``; ``list_users`` / ``pending_users`` / ``has_admin`` = Query
``USERS``; ``list_groups`` = Query ``GROUPS``; ``group_members`` = GetItem + Query
``G#<group>`` (``M#``); ``user_package_permissions`` / ``group_package_permissions`` = Query
of the user's / group's partition (``P#``); ``get_token`` = GetItem ``TOKEN#<id>``;
``list_tokens`` = Query ``U#<user>`` (``T#``).

Writes: ``create_user`` is a conditional put (``attribute_not_exists``: ``Conflict``);
``create_first_admin`` reads the first-admin claim, then ``has_admin`` (both consistently),
and writes the user and a new claim in one transaction, the claim under the condition that
it is still what was read: of concurrent first registrations exactly one commits;
everything that changes several items (a membership and its mirror, a permission with
its mirror and index copy, a token and its list entry) is one TransactWrite. The user and
group items carry a random ``rev`` that every write adding items to their partition
rewrites under the condition that ``rev`` is what was read; ``delete_user`` /
``delete_group`` delete the partition's items, their copies and the owner item under the
same condition. So a
concurrent grant, membership or token either lands before the deletion read the
partition (and is deleted with it) or fails its condition and is re-planned (and finds
the owner gone): a deleted user never leaves a token or a permission behind. A deletion
larger than one transaction runs in several, each guarded by the owner's ``rev``, the
owner item last; user-side items go with their mirrors, so an interrupted deletion
leaves nothing unreachable and can simply be repeated.

Package permissions do not require the user or group to exist (the special groups
``everyone`` and ``authenticated`` have none), as in pypicloud.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..domain import passwords
from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..domain.permissions import (
    AUTHENTICATED,
    EMPTY_ACL,
    EVERYONE,
    PackageAcl,
    acls_from_entries,
    check_permission_args,
    perm_string,
)
from ..ports import TokenRecord, UserInfo
from .dynamo_table import AGAIN, Plan, TableAdapter, Transaction, cached_per_table, table_for

USERS_PK = "USERS"
GROUPS_PK = "GROUPS"
ACCESS_PK = "ACCESS"
ALLOW_REGISTER_SK = "ALLOW_REGISTER"
FIRST_ADMIN_SK = "FIRST_ADMIN"
TOKEN_SK = "TOKEN"

USER_PREFIX = "U#"
GROUP_PREFIX = "G#"
MEMBER_PREFIX = "M#"
PERMISSION_PREFIX = "P#"
TOKEN_PREFIX = "T#"
ACL_PREFIX = "PKGACL#"
ACL_INDEX_PK = "PKGACLS"  # every permission of every project, for one-query listings
TOKEN_PK_PREFIX = "TOKEN#"

# Actions per TransactWriteItems call (DynamoDB's limit is 100).
MAX_TRANSACTION_ITEMS = 100


def user_key(username: str) -> tuple[str, str]:
    return USERS_PK, USER_PREFIX + username


def group_key(group: str) -> tuple[str, str]:
    return GROUPS_PK, GROUP_PREFIX + group


def owner_pk(kind: str, name: str) -> str:
    """The partition of a user's (``U#``) or a group's (``G#``) own items."""
    return (USER_PREFIX if kind == "user" else GROUP_PREFIX) + name


def acl_pk(project: str) -> str:
    return ACL_PREFIX + project


def acl_index_key(project: str, principal: str) -> tuple[str, str]:
    """The index copy of a permission (``principal``: ``U#<user>`` or ``G#<group>``).

    Project names (normalized, validated) never contain ``#``: the first one ends it.
    """
    return ACL_INDEX_PK, f"{project}#{principal}"


def token_pk(token_id: str) -> str:
    return TOKEN_PK_PREFIX + token_id


def _rev() -> str:
    return os.urandom(8).hex()


# --- pynamodb models, built per table name --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Models:
    item: Any  # keys only: memberships, and any item of a partition being deleted
    user: Any
    group: Any
    perm: Any
    token: Any
    setting: Any
    claim: Any


def _build_models(table: str, aws_region: str | None) -> _Models:
    from pynamodb.attributes import (
        BooleanAttribute,
        ListAttribute,
        NumberAttribute,
        UnicodeAttribute,
    )

    Item: Any = table_for(table, aws_region).base  # shared with the catalog's item classes

    class UserItem(Item):
        password_hash = UnicodeAttribute()
        admin = BooleanAttribute()
        pending = BooleanAttribute()
        rev = UnicodeAttribute()

    class GroupItem(Item):
        rev = UnicodeAttribute()

    class PermItem(Item):
        perms = UnicodeAttribute()

    class TokenItem(Item):
        username = UnicodeAttribute()
        name = UnicodeAttribute()
        secret_sha256 = UnicodeAttribute()
        created = NumberAttribute()
        expires = NumberAttribute(null=True)
        projects = ListAttribute(of=UnicodeAttribute, null=True)
        capabilities = ListAttribute(of=UnicodeAttribute, null=True)

    class SettingItem(Item):
        value = BooleanAttribute()

    class ClaimItem(Item):
        username = UnicodeAttribute()
        rev = UnicodeAttribute()

    return _Models(Item, UserItem, GroupItem, PermItem, TokenItem, SettingItem, ClaimItem)


models_for = cached_per_table(_build_models)


def _token_item(model: Any, pk: str, sk: str, token: TokenRecord) -> Any:
    return model(
        pk,
        sk,
        username=token.username,
        name=token.name,
        secret_sha256=token.secret_sha256,
        created=token.created,
        expires=token.expires,
        projects=None if token.projects is None else list(token.projects),
        capabilities=None if token.capabilities is None else list(token.capabilities),
    )


def _to_token(item: Any) -> TokenRecord:
    return TokenRecord(
        token_id=item.pk[len(TOKEN_PK_PREFIX) :]
        if item.pk.startswith(TOKEN_PK_PREFIX)
        else item.sk[len(TOKEN_PREFIX) :],
        username=item.username,
        name=item.name,
        secret_sha256=item.secret_sha256,
        created=float(item.created),
        expires=None if item.expires is None else float(item.expires),
        projects=None if item.projects is None else list(item.projects),
        capabilities=None if item.capabilities is None else list(item.capabilities),
    )


# --- the adapter ------------------------------------------------------------------------


class DynamoAccess(TableAdapter):
    """The MutableAccessBackend port on one DynamoDB table (schema in ``table_schema``)."""

    models_factory = staticmethod(models_for)

    # --- reads ---

    def _get(self, model: Any, key: tuple[str, str], *, consistent: bool | None = None) -> Any:
        consistent = self.consistent_read if consistent is None else consistent
        try:
            return model.get(*key, consistent_read=consistent)
        except model.DoesNotExist:
            return None

    def _query(self, model: Any, pk: str, prefix: str | None = None, **kwargs: Any) -> Iterator:
        condition = model.sk.startswith(prefix) if prefix else None
        return model.query(pk, condition, consistent_read=self.consistent_read, **kwargs)

    def _user(self, username: str, *, consistent: bool | None = None) -> Any | None:
        return self._get(self.models.user, user_key(username), consistent=consistent)

    # --- AccessBackend ---

    def verify_user(self, username: str, password: str) -> bool:
        user = self._user(username)
        stored = user.password_hash if user is not None and not user.pending else None
        # Unknown and pending users still pay one (dummy) verification: same timing.
        return passwords.verify(password, stored)

    def groups(self, username: str) -> frozenset[str]:
        items = self._query(self.models.item, owner_pk("user", username), GROUP_PREFIX)
        return frozenset(item.sk[len(GROUP_PREFIX) :] for item in items)

    def is_admin(self, username: str) -> bool:
        user = self._user(username)
        return user is not None and bool(user.admin) and not user.pending

    def package_acl(self, project: str) -> PackageAcl:
        users: dict[str, frozenset[str]] = {}
        groups: dict[str, frozenset[str]] = {}
        for item in self._query(self.models.perm, acl_pk(project)):
            if item.sk.startswith(USER_PREFIX):
                users[item.sk[len(USER_PREFIX) :]] = frozenset(item.perms)
            elif item.sk.startswith(GROUP_PREFIX):
                groups[item.sk[len(GROUP_PREFIX) :]] = frozenset(item.perms)
        if not users and not groups:
            return EMPTY_ACL
        return PackageAcl(users, groups)

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        """One Query of the index partition, however many projects are asked for."""

        def entries() -> Iterator[tuple[str, str, str, str]]:
            for item in self._query(self.models.perm, ACL_INDEX_PK):
                project, _, principal = item.sk.partition("#")
                kind = "user" if principal.startswith(USER_PREFIX) else "group"
                yield project, kind, principal[len(USER_PREFIX) :], item.perms

        return acls_from_entries(projects, entries())

    def backfill_acl_index(self) -> int:
        """Write the ``PKGACLS`` copy of every permission that lacks it; the number written.

        Tables written before that index existed lack the copies, and non-admin listings
        of ``/simple/`` (one Query of it) would then miss per-project grants. Idempotent,
        and no Scan: each principal's mirror items name its projects; the permission item
        itself is what is copied.
        """
        m = self.models
        users = {user.username for user in self.list_users()} | set(self.pending_users())
        principals = [USER_PREFIX + name for name in sorted(users)]
        groups = {*self.list_groups(), EVERYONE, AUTHENTICATED}
        principals += [GROUP_PREFIX + name for name in sorted(groups)]
        written = 0
        for principal in principals:
            for item in self._query(m.perm, principal, PERMISSION_PREFIX):
                project = item.sk[len(PERMISSION_PREFIX) :]
                written += self.transact(self._index_copy_plan(project, principal))
        return written

    def _index_copy_plan(self, project: str, principal: str) -> Callable[[], Plan]:
        """Write the ``PKGACLS`` copy of one permission if it lacks it or differs, on the
        condition that the permission is still what was copied (a revoke meanwhile makes
        the plan run again, so no stale copy outlives it). Result: 1 written, 0 not."""
        m = self.models
        acl_key = (acl_pk(project), principal)
        index_key = acl_index_key(project, principal)

        def plan() -> Plan:
            entry = self._get(m.perm, acl_key, consistent=True)
            copy = self._get(m.perm, index_key, consistent=True)
            if entry is None or (copy is not None and copy.perms == entry.perms):
                return Plan(None, 0)
            tx = Transaction()
            tx.check("acl", m.perm, *acl_key, m.perm.perms == entry.perms)
            tx.put("index", m.perm(*index_key, perms=entry.perms))
            return Plan(tx, 1)

        return plan

    def health(self) -> None:
        """One GetItem (the same permission as the real reads)."""
        try:
            self._get(self.models.setting, (ACCESS_PK, ALLOW_REGISTER_SK), consistent=False)
        except Exception as exc:
            raise BackendUnavailable(
                f"DynamoDB table {self.table_name!r} cannot answer: {exc}"
            ) from exc

    # --- AccessDirectory ---

    def list_users(self) -> list[UserInfo]:
        items = self._query(self.models.user, USERS_PK, USER_PREFIX)
        users = [
            UserInfo(username=item.sk[len(USER_PREFIX) :], admin=bool(item.admin))
            for item in items
            if not item.pending
        ]
        return sorted(users, key=lambda u: u.username)

    def get_user(self, username: str) -> UserInfo | None:
        user = self._user(username)
        if user is None or user.pending:
            return None
        return UserInfo(
            username=username, admin=bool(user.admin), groups=sorted(self.groups(username))
        )

    def list_groups(self) -> list[str]:
        items = self._query(self.models.item, GROUPS_PK, GROUP_PREFIX)
        return sorted(item.sk[len(GROUP_PREFIX) :] for item in items)

    def group_members(self, group: str) -> list[str]:
        if self._get(self.models.item, group_key(group)) is None:
            raise NotFound(f"No group {group!r}.")
        items = self._query(self.models.item, owner_pk("group", group), MEMBER_PREFIX)
        return sorted(item.sk[len(MEMBER_PREFIX) :] for item in items)

    def _package_permissions(self, kind: str, name: str) -> dict[str, frozenset[str]]:
        items = self._query(self.models.perm, owner_pk(kind, name), PERMISSION_PREFIX)
        return {item.sk[len(PERMISSION_PREFIX) :]: frozenset(item.perms) for item in items}

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        return self._package_permissions("user", username)

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]:
        return self._package_permissions("group", group)

    # --- users ---

    def create_user(
        self, username: str, password_hash: str, *, admin: bool = False, pending: bool = False
    ) -> None:
        from pynamodb.exceptions import PutError

        model = self.models.user
        item = model(
            *user_key(username),
            password_hash=password_hash,
            admin=admin,
            pending=pending,
            rev=_rev(),
        )
        try:
            item.save(condition=model.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"User {username!r} already exists.") from None
            raise

    def delete_user(self, username: str) -> None:
        self._delete_owner("user", username)

    def get_password_hash(self, username: str) -> str | None:
        user = self._user(username)
        return None if user is None else user.password_hash

    def _change_user(
        self,
        username: str,
        change: Callable[[Any], dict[str, Any] | None],
    ) -> None:
        """Rewrite the user item with ``change(item)``'s attributes (None: nothing to do)."""
        m = self.models

        def plan() -> Plan:
            user = self._user(username, consistent=True)
            if user is None:
                raise NotFound(f"No user {username!r}.")
            changes = change(user)
            if changes is None:
                return Plan(None)
            tx = Transaction()
            tx.put("user", self._user_item(user, **changes), m.user.rev == user.rev)
            return Plan(tx)

        self.transact(plan)

    def _user_item(self, user: Any, **changes: Any) -> Any:
        """A copy of ``user`` with ``changes`` and a new ``rev``."""
        values = {
            "password_hash": user.password_hash,
            "admin": bool(user.admin),
            "pending": bool(user.pending),
        }
        values.update(changes)
        return self.models.user(user.pk, user.sk, rev=_rev(), **values)

    def set_password_hash(self, username: str, password_hash: str) -> None:
        self._change_user(username, lambda user: {"password_hash": password_hash})

    def set_admin(self, username: str, admin: bool) -> None:
        """Raise ``NotFound`` for an unknown user."""
        self._change_user(
            username, lambda user: None if bool(user.admin) == admin else {"admin": admin}
        )

    def pending_users(self) -> list[str]:
        items = self._query(self.models.user, USERS_PK, USER_PREFIX)
        return sorted(item.sk[len(USER_PREFIX) :] for item in items if item.pending)

    def approve_user(self, username: str) -> None:
        def change(user: Any) -> dict[str, Any]:
            if not user.pending:
                raise NotFound(f"No pending user {username!r}.")
            return {"pending": False}

        self._change_user(username, change)

    def has_admin(self, *, consistent: bool | None = None) -> bool:
        model = self.models.user
        condition = (model.admin == True) & (model.pending == False)  # noqa: E712
        items = model.query(
            USERS_PK,
            model.sk.startswith(USER_PREFIX),
            filter_condition=condition,
            consistent_read=self.consistent_read if consistent is None else consistent,
        )
        return next(iter(items), None) is not None

    def create_first_admin(self, username: str, password_hash: str) -> bool:
        m = self.models
        claim_key = (ACCESS_PK, FIRST_ADMIN_SK)

        def plan() -> Plan:
            # The claim first: a winner that commits after this read changes the claim
            # (our condition fails); one that committed before it is seen by has_admin.
            claim = self._get(m.claim, claim_key, consistent=True)
            if self.has_admin(consistent=True):
                return Plan(None, False)
            tx = Transaction()
            tx.put(
                "claim",
                m.claim(*claim_key, username=username, rev=_rev()),
                m.claim.pk.does_not_exist() if claim is None else m.claim.rev == claim.rev,
            )
            user = m.user(
                *user_key(username),
                password_hash=password_hash,
                admin=True,
                pending=False,
                rev=_rev(),
            )
            tx.put("user", user, m.user.pk.does_not_exist())
            return Plan(tx, True)

        def conflict() -> Exception:
            return Conflict(f"User {username!r} already exists.")

        # A lost claim is planned again: the winner's user is an admin by then.
        return self.transact(plan, ("user", conflict))

    # --- groups ---

    def create_group(self, group: str) -> None:
        from pynamodb.exceptions import PutError

        model = self.models.group
        try:
            model(*group_key(group), rev=_rev()).save(condition=model.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def delete_group(self, group: str) -> None:
        self._delete_owner("group", group)

    def add_member(self, username: str, group: str) -> None:
        m = self.models

        def plan() -> Plan:
            user = self._user(username, consistent=True)
            if user is None:
                raise NotFound(f"No user {username!r}.")
            if self._get(m.item, (owner_pk("user", username), GROUP_PREFIX + group)) is not None:
                return Plan(None)  # already a member
            current = self._get(m.group, group_key(group), consistent=True)
            tx = Transaction()
            tx.put("user", self._user_item(user), m.user.rev == user.rev)
            tx.put(
                "group",
                m.group(*group_key(group), rev=_rev()),
                m.group.pk.does_not_exist() if current is None else m.group.rev == current.rev,
            )
            tx.put("member", m.item(owner_pk("user", username), GROUP_PREFIX + group))
            tx.put("mirror", m.item(owner_pk("group", group), MEMBER_PREFIX + username))
            return Plan(tx)

        self.transact(plan)

    def remove_member(self, username: str, group: str) -> None:
        m = self.models

        def plan() -> Plan:
            tx = Transaction()
            tx.delete("member", m.item(owner_pk("user", username), GROUP_PREFIX + group))
            tx.delete("mirror", m.item(owner_pk("group", group), MEMBER_PREFIX + username))
            return Plan(tx)

        self.transact(plan)

    # --- package permissions ---

    def set_permission(self, project: str, kind: str, name: str, perm: str, granted: bool) -> None:
        check_permission_args(kind, perm)
        m = self.models
        principal_sk = (USER_PREFIX if kind == "user" else GROUP_PREFIX) + name
        acl_key = (acl_pk(project), principal_sk)
        mirror_key = (owner_pk(kind, name), PERMISSION_PREFIX + project)
        index_key = acl_index_key(project, principal_sk)
        owner_model = m.user if kind == "user" else m.group
        owner_key = user_key(name) if kind == "user" else group_key(name)

        def plan() -> Plan:
            owner = self._get(owner_model, owner_key, consistent=True)
            entry = self._get(m.perm, acl_key, consistent=True)
            current = set(entry.perms) if entry is not None else set()
            updated = current | {perm} if granted else current - {perm}
            if updated == current:
                return Plan(None)
            tx = Transaction()
            condition = m.perm.pk.does_not_exist() if entry is None else m.perm.perms == entry.perms
            if updated:
                perms = perm_string(updated)
                tx.put("acl", m.perm(*acl_key, perms=perms), condition)
                tx.put("mirror", m.perm(*mirror_key, perms=perms))
                tx.put("index", m.perm(*index_key, perms=perms))
            else:
                tx.delete("acl", m.perm(*acl_key), condition)
                tx.delete("mirror", m.perm(*mirror_key))
                tx.delete("index", m.perm(*index_key))
            # Serialize with delete_user / delete_group (see the module docstring).
            if owner is None:
                tx.check("owner", owner_model, *owner_key, owner_model.pk.does_not_exist())
            elif kind == "user":
                tx.put("owner", self._user_item(owner), owner_model.rev == owner.rev)
            else:
                tx.put("owner", m.group(*owner_key, rev=_rev()), owner_model.rev == owner.rev)
            return Plan(tx)

        self.transact(plan)

    # --- registration ---

    def allow_register(self) -> bool:
        item = self._get(self.models.setting, (ACCESS_PK, ALLOW_REGISTER_SK))
        return item is not None and bool(item.value)

    def set_allow_register(self, allow: bool) -> None:
        self.models.setting(ACCESS_PK, ALLOW_REGISTER_SK, value=allow).save()

    # --- API tokens ---

    def add_token(self, token: TokenRecord, *, external_user: bool = False) -> None:
        """Raise ``NotFound`` unless the user exists (or is ``external_user``), ``Conflict``
        for a taken token_id."""
        m = self.models

        def plan() -> Plan:
            user = None if external_user else self._user(token.username, consistent=True)
            if user is None and not external_user:
                raise NotFound(f"No user {token.username!r}.")
            tx = Transaction()
            tx.put(
                "token",
                _token_item(m.token, token_pk(token.token_id), TOKEN_SK, token),
                m.token.pk.does_not_exist(),
            )
            tx.put(
                "listed",
                _token_item(
                    m.token, owner_pk("user", token.username), TOKEN_PREFIX + token.token_id, token
                ),
            )
            if user is not None:
                tx.put("user", self._user_item(user), m.user.rev == user.rev)
            return Plan(tx)

        def conflict() -> Exception:
            return Conflict(f"Token {token.token_id!r} already exists.")

        self.transact(plan, ("token", conflict))

    def get_token(self, token_id: str) -> TokenRecord | None:
        item = self._get(self.models.token, (token_pk(token_id), TOKEN_SK))
        return None if item is None else _to_token(item)

    def list_tokens(self, username: str) -> list[TokenRecord]:
        """The user's tokens, oldest first."""
        items = self._query(self.models.token, owner_pk("user", username), TOKEN_PREFIX)
        return sorted((_to_token(item) for item in items), key=lambda t: (t.created, t.token_id))

    def delete_token(self, token_id: str) -> None:
        m = self.models

        def plan() -> Plan:
            item = self._get(m.token, (token_pk(token_id), TOKEN_SK), consistent=True)
            if item is None:
                return Plan(None)
            tx = Transaction()
            tx.delete("token", item)
            tx.delete("listed", m.item(owner_pk("user", item.username), TOKEN_PREFIX + token_id))
            return Plan(tx)

        self.transact(plan)

    # --- helpers ---

    def _mirrors(self, kind: str, name: str, sk: str) -> list[tuple[str, str]]:
        """The other copies of an item of the owner partition ``owner_pk(kind, name)``."""
        if sk.startswith(PERMISSION_PREFIX):
            project, principal = sk[len(PERMISSION_PREFIX) :], owner_pk(kind, name)
            return [(acl_pk(project), principal), acl_index_key(project, principal)]
        if kind == "user" and sk.startswith(GROUP_PREFIX):
            return [(owner_pk("group", sk[len(GROUP_PREFIX) :]), MEMBER_PREFIX + name)]
        if kind == "group" and sk.startswith(MEMBER_PREFIX):
            return [(owner_pk("user", sk[len(MEMBER_PREFIX) :]), GROUP_PREFIX + name)]
        if kind == "user" and sk.startswith(TOKEN_PREFIX):
            return [(token_pk(sk[len(TOKEN_PREFIX) :]), TOKEN_SK)]
        return []

    def _delete_owner(self, kind: str, name: str) -> None:
        """Delete a user or group item, its partition's items and their mirrors."""
        m = self.models
        owner_model = m.user if kind == "user" else m.group
        owner_key = user_key(name) if kind == "user" else group_key(name)
        per_transaction = (MAX_TRANSACTION_ITEMS - 1) // 3  # item + up to 2 copies, + owner

        def plan() -> Plan:
            owner = self._get(owner_model, owner_key, consistent=True)
            items = m.item.query(owner_pk(kind, name), consistent_read=True)
            groups = [(item.pk, item.sk, self._mirrors(kind, name, item.sk)) for item in items]
            if owner is None and not groups:
                return Plan(None)
            batch, rest = groups[:per_transaction], groups[per_transaction:]
            tx = Transaction()
            for i, (pk, sk, mirrors) in enumerate(batch):
                tx.delete(f"item{i}", m.item(pk, sk))
                for j, mirror in enumerate(mirrors):
                    tx.delete(f"mirror{i}.{j}", m.item(*mirror))
            if owner is None:
                tx.check("owner", owner_model, *owner_key, owner_model.pk.does_not_exist())
            elif rest:
                tx.check("owner", owner_model, *owner_key, owner_model.rev == owner.rev)
            else:
                tx.delete("owner", owner, owner_model.rev == owner.rev)
            return Plan(tx, AGAIN if rest else None)

        self.transact(plan)
