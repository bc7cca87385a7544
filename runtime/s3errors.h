/* s3errors.h - internal: what an S3 error response means. Reads the error document, and
 * from a table of S3 error codes tells whether sending the request again may succeed and
 * writes the message that names the problem and the fix. */
#ifndef S3SINK_S3ERRORS_H
#define S3SINK_S3ERRORS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The fields of an <Error> document; empty when absent. */
typedef struct s3errors_doc {
  char code[64];
  char message[512];
  char request_id[128];
  char region[64];
  char server_time[40];
} s3errors_doc;

/* Reads the <Error> document in body[0..len), if there is one, into *e. */
void s3errors_parse(const char *body, size_t len, s3errors_doc *e);

/* What the message names. */
typedef struct s3errors_ctx {
  const char *op;            /* "PutObject" */
  const char *what;          /* "object 'k' in bucket 'b'", or "bucket 'b'" */
  const char *key;           /* NULL for bucket operations */
  const char *bucket;
  const char *region;
  const char *endpoint;      /* "http://127.0.0.1:9000" */
  const char *bucket_region; /* the x-amz-bucket-region header, or "" */
  const char *body;          /* the response body (shown if it is not an S3 error) */
  size_t body_len;
  const char *addressing;    /* endpoint_addressing_hint: "" or "; virtual-hosted ..." */
} s3errors_ctx;

/* Fills err (code S3SINK_ES3, the message and transient) for a response with HTTP status
 * `status` and error document e; returns S3SINK_ES3. */
int s3errors_describe(const s3errors_ctx *ctx, long status, const s3errors_doc *e,
                      s3sink_err *err);

#endif
