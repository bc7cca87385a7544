/* endpoint.h - internal: where the S3 client's requests go. Checks the bucket and region
 * names, reads the endpoint URL with libcurl's URL parser, and builds each request's path
 * and URL, path-style ("/bucket/key") or virtual-hosted ("bucket.host", "/key"). */
#ifndef S3SINK_ENDPOINT_H
#define S3SINK_ENDPOINT_H

#include <stdbool.h>

#include "bytebuf.h"
#include "error.h"

typedef struct endpoint {
  char *scheme; /* "http" or "https" */
  char *host;   /* Host header: "127.0.0.1:9000", "bucket.s3.amazonaws.com" */
  char *origin; /* for messages: "http://127.0.0.1:9000" */
  bool virtual_hosted;
} endpoint;

/* Checks the bucket name (required) and the region name. */
int endpoint_check_names(const char *bucket, const char *region, s3sink_err *err);

/* Reads url ("http://127.0.0.1:9000", "https://host[:port]", https when the scheme is
 * missing; NULL or "": https://s3.<region>.amazonaws.com) into *e, which the caller
 * releases with endpoint_free (also after a failure). */
int endpoint_parse(endpoint *e, const char *url, const char *region, const char *bucket,
                   bool virtual_hosted, s3sink_err *err);
void endpoint_free(endpoint *e);

/* For a failure that virtual-hosted addressing may cause (the bucket's host name does not
 * resolve or refuses connections, the server ignored the bucket in the host name): writes
 * into buf "; virtual-hosted addressing sends ... <how to switch to path-style>", or ""
 * for a path-style endpoint. Every addressing message uses the same advice. */
void endpoint_addressing_hint(const endpoint *e, char *buf, size_t cap);

/* Appends the request's path (the key URI-encoded, '/' kept) to path and
 * "<scheme>://<host><path>[?query]" to url, both NUL-terminated. bucket is the one given
 * to endpoint_parse; key and query may be NULL. False when out of memory. */
bool endpoint_target(const endpoint *e, const char *bucket, const char *key, const char *query,
                     bytebuf *path, bytebuf *url);

#endif
