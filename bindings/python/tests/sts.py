"""Temporary credentials from the test MinIO's STS that really stop working when they say:
AssumeRole (MinIO's shortest lifetime is 15 minutes) with a session policy that allows S3
only until `seconds` from now. Used by test_credentials.py and by scripts/
sts_credential_process.py, so it imports nothing heavier than botocore."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any


def assume_role(seconds: float, endpoint: str | None = None, access_key: str | None = None,
                secret_key: str | None = None) -> dict[str, Any]:
    """{"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" (ISO 8601, UTC),
    "expires_at" (epoch seconds)}; the root credentials default to the test MinIO's."""
    import botocore.session

    # a session of its own, blind to the AWS_* setup of the test that calls it
    session = botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })
    sts = session.create_client(
        "sts",
        endpoint_url=endpoint or os.environ["S3SINK_TEST_ENDPOINT"],
        aws_access_key_id=access_key or os.environ["S3SINK_TEST_ACCESS_KEY"],
        aws_secret_access_key=secret_key or os.environ["S3SINK_TEST_SECRET_KEY"],
        region_name="us-east-1",
    )
    until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)).replace(microsecond=0)
    stamp = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:*"],
            "Resource": ["arn:aws:s3:::*"],
            "Condition": {"DateLessThan": {"aws:CurrentTime": stamp}},
        }],
    }
    creds = sts.assume_role(
        RoleArn="arn:minio:iam:::role/s3sink-test", RoleSessionName="s3sink-test",
        DurationSeconds=900, Policy=json.dumps(policy),
    )["Credentials"]
    return {
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "SessionToken": creds["SessionToken"],
        "Expiration": stamp,
        "expires_at": until.timestamp(),
    }
