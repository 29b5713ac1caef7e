"""Which records a user may find in search results, from the same rules as requests (preserve.access.rules).

A record is visible when its user could ask for it: open and conditional records to every active user (within
the fonds they are granted, if any); secret records only where the user holds a grant for the fonds; closed
(Tuyệt mật) records to no one but an administrator. A disabled account sees nothing. Administrators see all.
"""

from __future__ import annotations

from preserve.search.index import Visibility

from .rules import CLOSED, CONDITIONAL, LEVELS, OPEN, SECRET, User


def visibility_for(user: User) -> Visibility:
    if user.disabled:
        return Visibility(levels=frozenset(), secret_fonds=frozenset(), fonds_scope=frozenset())
    if user.role == "admin":
        return Visibility(levels=frozenset(LEVELS), secret_fonds=None, fonds_scope=None)
    scope = frozenset(user.grants) if user.grants else None
    levels = {OPEN, CONDITIONAL} | ({SECRET} if user.grants else set())
    assert CLOSED not in levels
    return Visibility(levels=frozenset(levels), secret_fonds=frozenset(user.grants), fonds_scope=scope)
