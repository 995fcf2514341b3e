# Operator's image: Debian's slim Python, the bot in a virtual environment, run as an unprivileged user,
# with a health check. Build: `docker build -t operator-sms .`; run it with compose.yaml.
#
# No container engine runs where Operator is developed, so every step here is a script of deploy/ that the
# test suite runs itself (tests/deploy/test_image.py reads this file, does its COPY and RUN steps in a
# temporary root, and starts the ENTRYPOINT and HEALTHCHECK from there). Keep the steps to scripts.

FROM python:3.11-slim-bookworm AS build
COPY pyproject.toml README.md /src/
COPY bot /src/bot
COPY intents /src/intents
COPY monitors /src/monitors
COPY deploy /src/deploy
RUN ["/src/deploy/install.sh", "/opt/operator", "/var/lib/operator"]

FROM python:3.11-slim-bookworm
COPY --from=build /opt/operator /opt/operator
COPY --from=build --chown=10001:10001 /var/lib/operator /var/lib/operator
ENV HOME=/var/lib/operator \
    OPERATOR_HISTORY_PATH=/var/lib/operator/operator-history.sqlite3 \
    MPLCONFIGDIR=/var/lib/operator/.matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
WORKDIR /var/lib/operator
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/opt/operator/libexec/healthcheck.sh"]
ENTRYPOINT ["/opt/operator/libexec/entrypoint.sh"]
