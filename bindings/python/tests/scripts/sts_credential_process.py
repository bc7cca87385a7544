"""A credential_process for test_credentials.py: prints temporary credentials of the test
MinIO (tests/sts.py) that stop working after argv[2] seconds, and appends
"<issued_at> <access key> <expires_at>" to the file argv[1]."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sts import assume_role  # noqa: E402

log, seconds = sys.argv[1], float(sys.argv[2])
creds = assume_role(seconds)
with open(log, "a") as f:
    f.write(f"{time.time()} {creds['AccessKeyId']} {creds['expires_at']}\n")
print(json.dumps({
    "Version": 1,
    "AccessKeyId": creds["AccessKeyId"],
    "SecretAccessKey": creds["SecretAccessKey"],
    "SessionToken": creds["SessionToken"],
    "Expiration": creds["Expiration"],
}))
