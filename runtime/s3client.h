/*
 * s3client.h - internal: the S3 operations the sink needs, over one reused libcurl easy
 * handle, signed with our own SigV4 (sigv4.c). Not thread-safe: one client per thread
 * at a time.
 */
#ifndef S3SINK_S3CLIENT_H
#define S3SINK_S3CLIENT_H

#include "credentials.h"
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
  credcache *creds;          /* what to sign with (borrowed: it must outlive the client);
                                NULL: the keys below */
  const char *access_key;    /* without creds: static keys; NULL/empty: anonymous, requests
                                are not signed */
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

/* Multipart uploads: an object sent in parts (S3: 1 to 10000 parts of 5 MiB to 5 GiB, the
 * last one smaller), created by CreateMultipartUpload and made an object by
 * CompleteMultipartUpload; until then its parts take space but no key. */
#define S3CLIENT_MAX_PARTS 10000
#define S3CLIENT_MIN_PART_BYTES ((uint64_t)5 << 20)
#define S3CLIENT_MAX_PART_BYTES ((uint64_t)5 << 30)

/* CreateMultipartUpload of key, with the headers the object keeps, as PutObject of
 * s3client_put_new_object sends them: Content-Type, the config's put_headers, and
 * `identity` (the whole body's SHA-256, hex; NULL: none) as the s3sink-sha256 metadata.
 * *upload_id is malloc'ed, the caller's (free()). */
int s3client_create_multipart(s3client *c, const char *key, const char *content_type,
                              const char *identity, char **upload_id, s3sink_err *err);

/* UploadPart `number` (1..10000) of the upload: the body is the part (from memory, or a
 * range of a file: s3body.offset), signed with sha_hex, its SHA-256 (NULL: hashed here;
 * S3 checks the body against it). The part's ETag, as the server sent it, goes into etag. */
int s3client_upload_part(s3client *c, const char *key, const char *upload_id, int number,
                         const s3body *body, const char *sha_hex, char *etag, size_t etag_cap,
                         s3sink_err *err);

typedef struct s3client_part {
  int number;
  const char *etag;
} s3client_part;

/* CompleteMultipartUpload of the parts (in increasing number), with `If-None-Match: *`
 * when asked (the object is created only if the key is free: 412 otherwise). S3 may answer
 * 200 and report a failure in the body: that is returned as the error it names. */
int s3client_complete_multipart(s3client *c, const char *key, const char *upload_id,
                                const s3client_part *parts, size_t n, bool if_none_match,
                                s3sink_err *err);

/* CompleteMultipartUpload that never overwrites and can be repeated, like
 * s3client_put_new_object: with If-None-Match; on a 412, or NoSuchUpload (an earlier
 * Complete of ours went through and its answer was lost), the object's identity
 * (HeadObject) tells our own object (S3CLIENT_ALREADY_THERE) from a foreign one
 * (S3CLIENT_TAKEN: the upload is still there, the caller aborts it). An upload that is
 * gone with nothing of ours under the key is a transient S3SINK_ES3 with s3_code
 * "NoSuchUpload": upload again. */
int s3client_complete_new_object(s3client *c, const char *key, const char *upload_id,
                                 const s3client_part *parts, size_t n, const char *identity,
                                 s3client_put_outcome *outcome, s3sink_err *err);

/* AbortMultipartUpload: the parts are deleted. An upload that is not there (completed or
 * aborted already: NoSuchUpload) counts as aborted. */
int s3client_abort_multipart(s3client *c, const char *key, const char *upload_id, s3sink_err *err);

/* ListMultipartUploads: the uploads not completed nor aborted whose key starts with
 * prefix, every page (of page_size uploads; 0: the server's default, 1000 on S3).
 * `on_upload` gets each key and upload id (borrowed, valid during the call); a non-zero
 * return stops the listing and is returned. MinIO lists the uploads of one key only:
 * there, the prefix must be the whole key (an empty prefix lists the uploads it started
 * since it runs). */
typedef int (*s3client_upload_fn)(void *ud, const char *key, const char *upload_id);
int s3client_list_multipart(s3client *c, const char *prefix, int page_size,
                            s3client_upload_fn on_upload, void *ud, s3sink_err *err);

/* One pass over a body to be sent in parts of part_len bytes: the SHA-256 of the whole
 * (hex, the object's identity) and of each part (ceil(len / part_len) digests into
 * parts, for signing them). Uses no connection. */
int s3client_hash_parts(s3client *c, const s3body *body, uint64_t part_len,
                        unsigned char (*parts)[32], char whole_hex[65], s3sink_err *err);

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
