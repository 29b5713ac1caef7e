"""Which records a user may find in search results, from the same rules as requests (preserve.access.rules).

A record is visible when its user could ask for it: open and conditional records to every active user (within
the fonds they are granted, if any); secret records only where the user holds a grant for the fonds; closed
(Tuyệt mật) records to no one but an administrator. A disabled account sees nothing. Administrators see all.
"""

from __future__ import annotations

from preserve.search.index import Visibility

from .rules import CONDITIONAL, LEVELS, OPEN, SECRET, User


def visibility_for(user: User) -> Visibility:
    if user.disabled:
        return Visibility(levels=frozenset(), secret_fonds=frozenset(), fonds_scope=frozenset())
    if user.role == "admin":
        return Visibility(levels=frozenset(LEVELS), secret_fonds=None, fonds_scope=None)
    grants = frozenset(user.grants)
    levels = frozenset({OPEN, CONDITIONAL} | ({SECRET} if grants else set()))  # never CLOSED: admins only
    return Visibility(levels=levels, secret_fonds=grants, fonds_scope=grants or None)
