/* uri.h - internal: the one percent-encoding of the signer and the S3 client, as SigV4 and
 * S3 define it: unreserved characters (A-Z a-z 0-9 - _ . ~) as they are, every other byte
 * as %XX with uppercase hex. The signer compares what it encodes with what the client
 * sends, so both must encode alike. */
#ifndef S3SINK_URI_H
#define S3SINK_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "bytebuf.h"

bool uri_unreserved(unsigned char c);

/* Appends p[0..n) encoded to b; '/' is kept as it is when keep_slash (object keys in a
 * path). False when b is full or out of memory. */
bool uri_encode(bytebuf *b, const char *p, size_t n, bool keep_slash);

#endif
