"""A real AWS API on loopback for the CloudWatch and API Gateway tests: moto in server mode, which
speaks the same wire protocols as AWS, so the adapters' boto3 clients go over real HTTP to it.

Credentials are fake and set in the environment only while a test module runs (the adapters read
the standard AWS chain, as in production); the shared config and credentials files are pointed
at nothing, so a developer's own AWS profile is never read or used.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.servers import LOOPBACK

REGION = "eu-west-1"
FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
CLEARED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
           "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI")  # fmt: skip


@contextlib.contextmanager
def fake_credentials(tmp: Path) -> Iterator[None]:
    """Fake keys in the environment for the duration, and no shared AWS files."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in CLEARED:
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", str(tmp / "no-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-credentials"))
        yield


@contextlib.contextmanager
def without_credentials(tmp: Path) -> Iterator[None]:
    """An environment where the AWS chain finds no credentials at all."""
    with fake_credentials(tmp), pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_ACCESS_KEY_ID")
        patch.delenv("AWS_SECRET_ACCESS_KEY")
        yield


@dataclass
class MotoServer:
    """moto on a loopback port, with helpers that put real data into it through boto3."""

    url: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def log_events(self, group: str, stream: str, messages: Sequence[tuple[float, str]]) -> None:
        """Create the group and stream (if new) and put (seconds ago, message) events."""
        logs = self.client("logs")
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        if not logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream)["logStreams"]:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = time.time()
        events = sorted(({"timestamp": int((now - ago) * 1000), "message": text} for ago, text in messages),
                        key=lambda e: e["timestamp"])  # fmt: skip
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def metric(self, namespace: str, name: str, dimensions: dict[str, str], points: Sequence[tuple[float, float]],
               unit: str = "None") -> None:  # fmt: skip
        """Put (seconds ago, value) datapoints."""
        now = datetime.now(UTC)
        dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
        data = [{"MetricName": name, "Dimensions": dims, "Value": value, "Unit": unit,
                 "Timestamp": now - timedelta(seconds=ago)} for ago, value in points]  # fmt: skip
        self.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=data)

    def rest_api(self, name: str, paths: Sequence[str] = (), stages: Sequence[str] = ()) -> str:
        """A REST API with resources at `paths` (one level under /) and deployed `stages`; its id."""
        gateway = self.client("apigateway")
        api = gateway.create_rest_api(name=name)
        root = api["rootResourceId"]
        for path in paths:
            resource = gateway.create_resource(restApiId=api["id"], parentId=root, pathPart=path.strip("/"))
            gateway.put_method(restApiId=api["id"], resourceId=resource["id"], httpMethod="GET",
                               authorizationType="NONE")  # fmt: skip
            gateway.put_integration(restApiId=api["id"], resourceId=resource["id"], httpMethod="GET", type="MOCK")
        for stage in stages:
            gateway.create_deployment(restApiId=api["id"], stageName=stage)
        return str(api["id"])


@contextlib.contextmanager
def moto_server(tmp: Path) -> Iterator[MotoServer]:
    """moto serving every AWS API on a free loopback port, with fake credentials set meanwhile."""
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        with fake_credentials(tmp):
            yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()
