"""The registry of custom span and metric attribute names: `crm.<domain>.<name>`.

Code uses these constants, never a literal; a test checks that every `crm.` attribute string in
the source tree is listed here and that every name listed here is set somewhere, so dashboards
can rely on the names.
"""

from __future__ import annotations

RPC_PRINCIPAL = "crm.auth.principal"
RPC_ROLES = "crm.auth.roles"
FEED_EVENTS = "crm.feed.events"
FEED_CURSOR = "crm.feed.cursor"
OPERATION_KIND = "crm.operation.kind"

# No customer id on spans: the audit log records the trace id of every read and change of a
# customer, so a trace leads to its customers there, under the audit log's access rules, and the
# telemetry pipeline never holds an identifier of a person.
REGISTRY = frozenset({RPC_PRINCIPAL, RPC_ROLES, FEED_EVENTS, FEED_CURSOR, OPERATION_KIND})
