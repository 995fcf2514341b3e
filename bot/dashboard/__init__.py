"""The operators' web dashboard at /dashboard: recent messages, commands by intent, reply latency,
alerts sent and acked, and backend health over time. Server-rendered, closed unless configured.

`bot.dashboard.views.dashboard_router(settings)` is all the app needs; passwords are hashed with
`bot.dashboard.auth.hash_password` (behind `operator dashboard hash-password`).
"""
