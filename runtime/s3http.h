/* s3http.h - internal: HTTP exchanges over one libcurl easy handle, reused for every
 * request so the connection stays alive. Sends a body from memory or a file, keeps the
 * response body and the response headers the S3 client reads. Does not sign, retry or
 * interpret statuses: that is the S3 client's part. */
#ifndef S3SINK_S3HTTP_H
#define S3SINK_S3HTTP_H

#include <stdbool.h>

#include <curl/curl.h>

#include "bytebuf.h"
#include "error.h"
#include "s3body.h"

/* The metadata header holding an object's identity (see s3client.h). */
#define S3HTTP_IDENTITY_HEADER "x-amz-meta-s3sink-sha256"

typedef struct s3http_options {
  long connect_timeout_ms;
  long request_timeout_ms;
  bool insecure_tls;
  const char *ca_file;    /* NULL or "": the system's */
  const char *user_agent;
} s3http_options;

/* Response headers of the last exchange; "" when absent. */
typedef struct s3http_reply {
  char date[64];
  char request_id[128]; /* x-amz-request-id */
  char bucket_region[64];
  char etag[128];
  char identity[72];    /* S3HTTP_IDENTITY_HEADER */
} s3http_reply;

typedef struct s3http {
  CURL *curl;
  struct curl_slist *headers; /* for the next exchange */
  bytebuf resp;               /* response body of the last exchange; kept for reuse */
  bool resp_oom;              /* the body was over resp.max, or memory ran out */
  s3body up;                  /* request body being sent */
  size_t up_pos;
  int up_errno;               /* reading the body's file failed with this */
  s3http_reply got;
  char errbuf[CURL_ERROR_SIZE];
} s3http;

/* Sets up *h; the caller releases it with s3http_cleanup, also after a failure. */
int s3http_init(s3http *h, const s3http_options *o, s3sink_err *err);
void s3http_cleanup(s3http *h);

/* The request headers of the next exchange, in order. False when out of memory or a
 * header is over 8 KiB. */
bool s3http_set_headers(s3http *h, const s3sink_header *hdrs, size_t n);

/* Sends one request (method "GET", "PUT", "POST", "HEAD" or "DELETE"; body sent with PUT
 * and POST only; a POST's Content-Type must be among the headers, or libcurl adds a form's) and
 * receives the whole response, its body into h->resp up to max_response bytes. Returns
 * libcurl's code; on CURLE_OK *status holds the HTTP status. */
CURLcode s3http_exchange(s3http *h, const char *method, const char *url, const s3body *body,
                         size_t max_response, long *status);

#endif
