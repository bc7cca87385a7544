/* objhead.h - internal: the request headers that give every object of a sink its
 * settings (storage class, server-side encryption, tags, user metadata), built once at
 * open from the checked options; the S3 client adds them to each PutObject, and the
 * signer signs them with the rest (every x-amz-* header must be signed). */
#ifndef S3SINK_OBJHEAD_H
#define S3SINK_OBJHEAD_H

#include <stddef.h>

#include "error.h"
#include "s3sink.h"

typedef struct objhead {
  s3sink_header *v; /* names and values malloc'ed, owned */
  size_t n;
} objhead;

/* Builds the headers of the options of c (checked by options_resolve): x-amz-storage-class,
 * x-amz-server-side-encryption[-aws-kms-key-id], x-amz-tagging (the tags as an encoded
 * query: k=v&k2=v2), x-amz-meta-<name>. *out is the caller's (objhead_free), also on
 * failure. */
int objhead_build(const s3sink_config *c, objhead *out, s3sink_err *err);

void objhead_free(objhead *h);

#endif
