"""The operators' web dashboard at /dashboard: recent messages, commands by intent, reply latency,
alerts sent and acked, and backend health over time. Server-rendered, closed unless configured.

`dashboard_router(settings)` (in `views`) is all the app needs; passwords are hashed with
`hash_password` (in `auth`, behind `operator dashboard hash-password`).
"""

from __future__ import annotations

from bot.dashboard.auth import hash_password, verify_password
from bot.dashboard.views import dashboard_router

__all__ = ["dashboard_router", "hash_password", "verify_password"]
