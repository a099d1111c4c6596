"""The registry of custom span and metric attribute names: `crm.<domain>.<name>`.

Code uses these constants, never a literal; a test checks that every `crm.` attribute string in
the source tree is listed here, so dashboards can rely on the names.
"""

from __future__ import annotations

RPC_PRINCIPAL = "crm.auth.principal"
RPC_ROLES = "crm.auth.roles"
CUSTOMER_ID = "crm.profile.customer_id"
FEED_EVENTS = "crm.feed.events"
FEED_CURSOR = "crm.feed.cursor"
OPERATION_KIND = "crm.operation.kind"

REGISTRY = frozenset({RPC_PRINCIPAL, RPC_ROLES, CUSTOMER_ID, FEED_EVENTS, FEED_CURSOR, OPERATION_KIND})
