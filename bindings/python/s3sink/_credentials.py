"""Credentials, endpoint and region from botocore, as the AWS SDK for Python finds them.

Without explicit keys (or ``anonymous=True``, or a ``credentials`` callable of the
caller's), a :class:`Writer` signs with botocore's credential provider chain: the
environment, the shared credentials and config files (``AWS_PROFILE`` or ``profile``),
``credential_process``, AssumeRole profiles (``role_arn``), web identity (EKS/IRSA), SSO,
container (ECS) and instance (EC2) metadata. The runtime calls :class:`AwsCredentials`
before signing and again as the credentials near their expiry, so temporary credentials
are renewed while a writer runs. The endpoint and region the user did not give come from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` / the profile's ``endpoint_url`` (or its
``services`` section) and ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile's
``region``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from . import _s3sink

# When botocore does not say when refreshable credentials expire, ask it again this often.
_UNKNOWN_EXPIRY_S = 60


def session(profile: str | None = None) -> Any:
    """A botocore session, for ``profile`` if given (botocore then skips the environment's
    keys, as the runtime does for its ``profile`` option)."""
    import botocore.session

    return botocore.session.Session(profile=profile)


def _profile_name(sess: Any) -> str:
    return sess.profile or "default"


def _scoped_config(sess: Any) -> dict[str, Any]:
    import botocore.exceptions

    try:
        return sess.get_scoped_config()
    except botocore.exceptions.ProfileNotFound as e:
        raise _s3sink.ConfigError(f"{e}: check AWS_PROFILE (or profile) and ~/.aws/config") from None


def configured_endpoint(sess: Any) -> str | None:
    """The S3 endpoint configured outside the code, in botocore's order: AWS_ENDPOINT_URL_S3,
    AWS_ENDPOINT_URL, the "s3" endpoint_url of the profile's services section, the
    profile's endpoint_url; None when there is none or when configured endpoints are
    ignored (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, ignore_configured_endpoint_urls)."""
    if str(sess.get_config_variable("ignore_configured_endpoint_urls")).lower() == "true":
        return None
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    scoped = _scoped_config(sess)
    services = scoped.get("services")
    if services:
        section = sess.full_config.get("services", {}).get(services, {})
        url = section.get("s3", {}).get("endpoint_url") if isinstance(section.get("s3"), dict) else None
        if url:
            return url
    return scoped.get("endpoint_url") or None


def configured_region(sess: Any) -> str | None:
    """AWS_REGION, AWS_DEFAULT_REGION or the profile's region, or None."""
    _scoped_config(sess)  # a missing profile is named here rather than as "no region"
    return os.environ.get("AWS_REGION") or sess.get_config_variable("region") or None


class AwsCredentials:
    """The credentials of botocore's provider chain, for ``Writer(credentials=...)``.

    The chain runs at the first call (when the writer opens): finding nothing raises
    ConfigError, naming the sources. Each call returns botocore's current credentials
    (refreshed by botocore when they near their expiry) with their expiry, so that the
    runtime asks again in time. Called by the thread that signs, with the GIL."""

    def __init__(self, sess: Any) -> None:
        self._session = sess
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _resolve(self) -> Any:
        import botocore.exceptions

        with self._lock:
            if self._credentials is None:
                try:
                    creds = self._session.get_credentials()
                except botocore.exceptions.ProfileNotFound as e:
                    raise _s3sink.ConfigError(f"{e}: check AWS_PROFILE (or profile)") from None
                if creds is None:
                    raise _s3sink.ConfigError(
                        "no AWS credentials found by botocore (the environment, the shared "
                        f"credentials and config files for profile {_profile_name(self._session)!r}, "
                        "SSO, credential_process, web identity, container and instance "
                        "metadata): pass access_key and secret_key, set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass anonymous=True to send "
                        "unsigned requests"
                    )
                self._credentials = creds
            return self._credentials

    def __call__(self) -> dict[str, Any]:
        from botocore.credentials import RefreshableCredentials

        creds = self._resolve()
        frozen = creds.get_frozen_credentials()  # refreshes them when they near expiry
        expires_at = None
        if isinstance(creds, RefreshableCredentials):
            # botocore keeps the expiry private; read it after the refresh above, which
            # only this object's calls make (the runtime never calls it twice at once)
            expiry = getattr(creds, "_expiry_time", None)
            expires_at = expiry.timestamp() if expiry is not None else time.time() + _UNKNOWN_EXPIRY_S
        return {
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "session_token": frozen.token or None,
            "expires_at": expires_at,
            "source": f"botocore: {creds.method}",
        }

    def __repr__(self) -> str:
        return f"AwsCredentials(profile={_profile_name(self._session)!r})"


def complete(options: dict[str, Any]) -> None:
    """Completes a Writer's options in place: unless the caller gave keys, a credentials
    callable or anonymous=True, botocore's chain becomes the credentials, and the endpoint
    and region not given come from the environment and the profile. ``profile`` is
    botocore's then. Values of the wrong type are left for the runtime to refuse."""
    if options.get("credentials") is not None or options.get("anonymous") is True:
        return
    if options.get("access_key") is not None or options.get("secret_key") is not None:
        return
    profile = options.get("profile")
    if profile is not None and not isinstance(profile, str):
        return
    options.pop("profile", None)
    sess = session(profile)
    if options.get("endpoint") is None:
        endpoint = configured_endpoint(sess)
        if endpoint:
            options["endpoint"] = endpoint
    if options.get("region") is None:
        region = configured_region(sess)
        if region:
            options["region"] = region
    options["credentials"] = AwsCredentials(sess)
