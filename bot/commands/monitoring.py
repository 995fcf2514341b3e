"""Read-only monitoring commands: status, health, metrics, logs, db, gateway, graph.

Until the monitor adapters land these say plainly which backend would answer and that none is
configured, echoing the command understood so the user can check the parse.
"""

from __future__ import annotations

from bot.commands.registry import Answer, Request, command

BACKENDS = {
    "status": "monitor",
    "health": "monitor",
    "metrics": "metrics backend (prometheus, datadog or host)",
    "graph": "metrics backend (prometheus or datadog)",
    "logs": "logs backend (loki, elasticsearch, datadog or cloudwatch)",
    "db": "database monitor (pgbouncer)",
    "gateway": "gateway monitor (kong or apigateway)",
}


def not_configured(request: Request) -> Answer:
    """The honest answer while no adapter can serve the command."""
    backend = BACKENDS[request.parse.intent.value]
    return Answer(f"Understood: {request.parse.command}. No {backend} is connected yet.")


@command("status", usage="status")
async def status(request: Request) -> Answer:
    """One line per backend: is everything up, and what is firing."""
    return not_configured(request)


@command("health", usage="health [system]")
async def health(request: Request) -> Answer:
    """Checks a backend is reachable: prometheus, alertmanager, datadog, logs, database, gateway, host."""
    return not_configured(request)


@command("metrics", usage="metrics <metric> [service] [range]")
async def metrics(request: Request) -> Answer:
    """A metric now, or over a range: "metrics cpu service=checkout range=1h", "latency on auth 6h"."""
    return not_configured(request)


@command("logs", usage="logs [words] [service] [level] [range]")
async def logs(request: Request) -> Answer:
    """Newest matching log lines: "logs timeout service=payment level=error range=30m"."""
    return not_configured(request)


@command("db", usage="db [connections|pools|stats|clients]")
async def db(request: Request) -> Answer:
    """Database pool figures from pgBouncer: active, idle and waiting connections, queries per second."""
    return not_configured(request)


@command("gateway", usage="gateway [status|route]")
async def gateway(request: Request) -> Answer:
    """API gateway status, or one route's numbers: "gateway status", "gateway checkout"."""
    return not_configured(request)


@command("graph", usage="graph <metric> [service] [range]")
async def graph(request: Request) -> Answer:
    """A chart of a metric over time: "graph latency service=payment range=6h"."""
    return not_configured(request)
