"""``s3sink.Writer``: the C sink (``_s3sink.Writer``) with the credentials, endpoint and
region botocore finds when the caller gives none (see ``_credentials``). Every other
method is the C type's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import _credentials, _s3sink

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Unpack

    from ._options import SinkOptions
    from ._s3sink import Column, CredentialsCallable

logger = logging.getLogger("s3sink")


class Writer(_s3sink.Writer):
    __doc__ = _s3sink.Writer.__doc__

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            columns: Sequence[Column],
            credentials: CredentialsCallable | None = None,
            **options: Unpack[SinkOptions],
        ) -> None: ...

    else:

        def __init__(self, *args: Any, **options: Any) -> None:
            _credentials.complete(options)
            super().__init__(*args, **options)
            if self.anonymous:
                logger.info("s3sink: bucket %r: requests are anonymous (anonymous=True), nothing is signed",
                            options.get("bucket"))
            else:
                logger.info("s3sink: bucket %r: credentials from %s", options.get("bucket"),
                            self.credentials_source)
