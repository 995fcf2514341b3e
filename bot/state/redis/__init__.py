"""The bot's shared state in Redis, so several `operator serve` processes behind a load balancer act as one.

Each class here implements one interface of `bot.state.protocols` with the same behaviour as its in-memory
twin (the same tests run against both), made safe across processes: every read-decide-write is one
Lua script or one MULTI transaction, so two instances can never both own a MessageSid, both take the
last token of a bucket, both accept one silence code or both see an alert resolve.

Conventions:
- One client (one connection pool) per process is passed in; `redis_client` builds it with short
  timeouts and a single retry on a dropped connection, so a dead Redis fails a call in about a second
  instead of stalling a webhook. Built once in the app's lifespan, never at import.
- Every key sits under a prefix ("operator:" by default), values are compact JSON or plain strings.
  Every key expires except the open alerts (kept until resolved, at most `max_alerts`, as in memory)
  and two small counters: nothing grows without bound.
- Rate limits and alert budgets are computed on Redis's own clock (TIME inside the script), one clock
  for every instance; alert and action timestamps, which people read, come from the process's wall
  clock like the in-memory classes. Tests may inject a clock into either.
- Any Redis failure (refused, reset, timed out, read-only replica, wrong password) is raised as
  `StoreUnavailable` with a short text that never holds the URL, host or password. Each method says
  what a caller should assume when that happens; the caller decides what to do.
- A single Redis (or a Sentinel-managed primary) is assumed, 6.2 or later: some scripts touch keys
  they derive (another user's context when trimming, an alert's tombstone), which Redis Cluster forbids.
"""
