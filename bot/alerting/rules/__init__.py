"""The bot's own threshold rules: PromQL comparisons from a YAML file, evaluated on a schedule.

Alertmanager tells us about the alerts a team already has; these rules cover what it does not
(a small team with Prometheus and no Alertmanager, or one number someone wants texted about). A rule
file looks like this (comparison operators must be quoted: a bare `>` starts a block of text in YAML)::

    rules:
      - name: CheckoutCpuHigh
        metric: cpu                 # an alias from `metrics:`, or `expr:` with any PromQL
        service: checkout
        op: ">"
        threshold: 80
        for: 5m                     # true this long before it fires (default 0: at once)
        cooldown: 10m               # a resolved series does not fire again sooner (default 10m)
        severity: critical          # critical, warning (default) or info
        recipients: ["+15551230001", alice]   # empty: every subscribed user
        summary: "checkout CPU at {value}%"  # {value} and {labels.NAME} are filled in
        labels: {team: payments}

Each series a rule's query returns has its own state, keyed by a fingerprint (the rule's name and
the series' labels, hashed)::

    inactive --condition true--> pending --true for `for`, cooldown over--> firing  (notify "firing")
    pending  --condition false--> inactive                                          (nothing sent)
    firing   --condition false or series gone--> inactive                           (notify "resolved")

Cooldown: after a series resolves it does not fire again until `cooldown` has passed since the
resolution; a condition that holds meanwhile waits in `pending` and fires when the cooldown ends
(and `for` has been met), so a real problem is late, never lost.

Flapping: every firing or resolved notification a series sends is a *flip*. When a firing series'
condition stops holding and the series has flipped more than `flap_max` times (default 4) in the
last `flap_window_s` (default 1 h), the firing this would end included, it is *held*: it stays
firing and nothing is sent (so firing, resolved, firing, resolved, firing, then quiet). A held series
resolves, with one notification, once its condition has been false for `flap_window_s` without a
break. If the condition holds again meanwhile, the hold ends silently (the series never stopped
firing) and the next time it stops holding the rule above is applied afresh.

A series that disappears from the query's answer counts as "condition false", and a NaN value never
holds. A rule whose query fails is skipped for that tick with all its states untouched (logged when
it starts failing and when it answers again), so a Prometheus outage neither resolves nor fires
anything. States live in memory only: after a restart, a series still over its threshold fires again.
"""
