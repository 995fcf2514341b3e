"""Grafana's webhook contact point (payload version "1") as a `Notification`.

Grafana-managed alerting runs its own Alertmanager, and its webhook body is Alertmanager's notification
(receiver, status, groupKey, alerts with labels, annotations, startsAt, endsAt, fingerprint,
truncatedAlerts) with Grafana's additions beside it: `orgId`, `title`, `state`, `message`, and per alert
`values`, `valueString`, `generatorURL`, `silenceURL`, `dashboardURL`, `panelURL`, `imageURL`. So the group
is read by the same code as Alertmanager's (`alertmanager.parse_group`), and a Grafana alert is grouped,
numbered, budgeted, deduplicated and ordered exactly like an Alertmanager one.

What is left out on purpose: every link (the four URLs, `externalURL`, and `message`, which repeats
them in Markdown) is never read, so no SMS can carry one; `title` and `state` say again what the alerts'
statuses say; `values` are the query results behind the condition, which the summary annotation is for.
The org is kept (`extra["org_id"]`): the same fingerprint can exist in two orgs of one Grafana.
"""

from __future__ import annotations

from bot.alerting.model import Notification
from bot.alerting.sources.alertmanager import parse_group
from bot.alerting.sources.common import BadPayload, load_json, shown


def parse_grafana(body: bytes) -> Notification:
    """Grafana's webhook body (payload version "1") as a `Notification` of source "grafana".

    Raises BadPayload for another version (a custom payload template, say), a body that is not JSON or too
    big, and any field of the wrong type, with the same rules and messages as Alertmanager's webhook.
    """
    payload = load_json(body)
    version = payload.get("version")
    if version != "1":
        raise BadPayload(f"unsupported Grafana payload version {shown(version)}")
    org = payload.get("orgId")
    if org is not None and (not isinstance(org, int) or isinstance(org, bool)):
        raise BadPayload("orgId is not a number")
    return parse_group(payload, "grafana", {"org_id": str(org)} if org is not None else None)
