"""``s3sink.Writer``: the C sink (``_s3sink.Writer``) with the credentials, endpoint and
region botocore finds when the caller gives none (see ``_credentials``), and its events
logged and counted (see ``_events``). Every other method is the C type's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import _credentials, _events, _s3sink

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Unpack

    from ._events import EventCallable
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
            name: str | None = None,
            on_event: EventCallable | None = None,
            **options: Unpack[SinkOptions],
        ) -> None: ...

    else:

        def __init__(self, *args: Any, name: str | None = None, on_event: Any = None,
                     **options: Any) -> None:
            if name is not None and not isinstance(name, str):
                raise TypeError(f"name must be a str or None, not {type(name).__name__}")
            _credentials.complete(options)
            label = name if name is not None else f"s3://{options.get('bucket')}/{options.get('prefix') or ''}"
            monitor = _events.Monitor(name, label, on_event)
            super().__init__(*args, on_event=monitor, **options)
            _events.register(monitor, self)
            if self.anonymous:
                logger.info("s3sink %s: requests are anonymous (anonymous=True), nothing is signed", label)
            else:
                logger.info("s3sink %s: credentials from %s", label, self.credentials_source)
            left = self.stats
            if left["pending_objects"]:
                logger.info("s3sink %s: spool_dir %s: %d objects (%d rows) an earlier run left "
                            "are uploaded first", label, options.get("spool_dir"),
                            left["pending_objects"], left["buffered_rows"])
