/*
 * s3client.h - internal: the S3 operations the sink needs, over one reused libcurl easy
 * handle, signed with our own SigV4 (sigv4.c). Not thread-safe: one client per thread
 * at a time.
 */
#ifndef S3SINK_S3CLIENT_H
#define S3SINK_S3CLIENT_H

#include "error.h"
#include "s3body.h"
#include "s3sink.h"

typedef struct s3client s3client;

typedef struct s3client_config {
  const char *endpoint;      /* "http://127.0.0.1:9000", "https://host[:port]"; https if no
                                scheme; NULL: https://s3.<region>.amazonaws.com */
  const char *region;        /* NULL: "us-east-1" */
  const char *bucket;
  bool virtual_hosted;       /* false: path-style "/bucket/key" */
  const char *access_key;    /* NULL/empty: anonymous, requests are not signed */
  const char *secret_key;
  const char *session_token;
  long connect_timeout_ms;   /* 0: 10000 */
  long request_timeout_ms;   /* 0: 120000 */
  bool insecure_tls;
  const char *ca_file;
  const s3sink_header *put_headers; /* sent (and signed) with every PutObject of
                                       s3client_put_new_object: the object settings
                                       (objhead.h); copied */
  size_t nput_headers;
} s3client_config;

/* Copies everything it keeps from cfg. *out owned by the caller (s3client_free). */
int s3client_new(const s3client_config *cfg, s3client **out, s3sink_err *err);
void s3client_free(s3client *c);

/* PutObject. With if_none_match, sends `If-None-Match: *` so an existing key is never
 * overwritten; the server's 412 is returned as S3SINK_ES3 with s3_code
 * "PreconditionFailed". Sends x-amz-content-sha256 (S3 checks the body against it), and the
 * body's SHA-256 as the object's metadata s3sink-sha256 (its identity, see below). */
int s3client_put_object(s3client *c, const char *key, const void *body, size_t len,
                        const char *content_type, bool if_none_match, s3sink_err *err);

typedef enum s3client_put_outcome {
  S3CLIENT_CREATED,       /* the object is stored under key */
  S3CLIENT_ALREADY_THERE, /* key holds this very body already: an earlier attempt of ours
                             (a retry, or a request libcurl re-sent) stored it */
  S3CLIENT_TAKEN          /* key holds another object; ours was not stored */
} s3client_put_outcome;

/* PutObject that never overwrites and can be repeated, with the config's put_headers:
 * with If-None-Match, and on a 412
 * it reads the existing object's identity (HeadObject) to tell our own earlier attempt
 * from a foreign object. The identity is metadata, which S3, MinIO and S3-compatible
 * stores keep as sent, whatever the encryption (unlike the ETag). */
int s3client_put_new_object(s3client *c, const char *key, const s3body *body,
                            const char *content_type, s3client_put_outcome *outcome,
                            s3sink_err *err);

/* GetObject. On success *body is malloc'ed, owned by the caller (free()), NUL-terminated
 * after *len bytes. */
int s3client_get_object(s3client *c, const char *key, char **body, size_t *len, s3sink_err *err);

/* DeleteObject (tests and tools only; the sink never deletes). */
int s3client_delete_object(s3client *c, const char *key, s3sink_err *err);

/* HeadObject: copies the object's ETag header into etag and its s3sink-sha256 metadata
 * (empty if none) into identity; either may be NULL. A missing key gives S3SINK_ES3 with
 * s3_code "NoSuchKey". */
int s3client_head_object(s3client *c, const char *key, char *etag, size_t cap,
                         char *identity, size_t identity_cap, s3sink_err *err);

int s3client_head_bucket(s3client *c, s3sink_err *err);

/* DeleteBucket (tests and tools only). */
int s3client_delete_bucket(s3client *c, s3sink_err *err);
int s3client_create_bucket(s3client *c, s3sink_err *err);

/* ListObjectsV2 over every page under prefix, in the server's (ascending) order, from
 * the first key after start_after (NULL or "": from the start). `on_key` gets each key
 * (borrowed, valid during the call) and its size; a non-zero return stops the listing
 * and is returned. */
typedef int (*s3client_key_fn)(void *ud, const char *key, int64_t size);
int s3client_list(s3client *c, const char *prefix, const char *start_after,
                  s3client_key_fn on_key, void *ud, s3sink_err *err);

#endif
