/* s3client.c - the S3 operations the sink needs (see s3client.h): building, signing (our
 * own SigV4, sigv4.c; never CURLOPT_AWS_SIGV4) and running each request over one reused
 * connection (s3http.c), the clock-skew retry, and the classification of failures.
 *
 * Errors name the problem and the fix. Credentials never appear in a message: requests
 * carry them only in headers, and every message is scrubbed of the secret key and the
 * session token before it is returned, whatever the server echoed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bytebuf.h"
#include "endpoint.h"
#include "numfmt.h"
#include "s3client.h"
#include "s3errors.h"
#include "s3http.h"
#include "s3xml.h"
#include "uri.h"

#define DEFAULT_REGION "us-east-1"
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_REQUEST_TIMEOUT_MS 120000L
#define MAX_KEY_BYTES 1024
#define KEEP_BUFFER_BYTES ((size_t)8 << 20) /* larger response buffers are not kept */
#define MAX_RESPONSE_BYTES ((size_t)64 << 20) /* S3 answers (error, listing page) are small */
#define MAX_GET_BYTES ((size_t)1 << 30)       /* GetObject (tests and tools) */
#define SKEW_LIMIT_S 300                     /* a 403 with a Date this far off means skew */
#define USER_AGENT "s3sink/" S3SINK_VERSION

struct s3client {
  s3http http;
  endpoint ep;
  char *region;
  char *bucket;
  char *access_key;
  char *secret_key;
  char *session_token;
  bool anonymous;
  EVP_MD *sha256;
  int64_t clock_offset; /* seconds to add to the local clock to get the server's */
  s3sink_header *put_headers; /* the object settings, owned */
  size_t nput_headers;
};

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static char *xstrndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* Replaces every occurrence of secret in buf (NUL-terminated, capacity cap) by "***". */
static void scrub(char *buf, size_t cap, const char *secret) {
  if (!secret) return;
  size_t n = strlen(secret);
  if (n < 4) return;
  char *p;
  while ((p = strstr(buf, secret)) != NULL) {
    size_t tail = strlen(p + n) + 1;
    if (3 + tail > cap - (size_t)(p - buf)) tail = cap - (size_t)(p - buf) - 3;
    memmove(p + 3, p + n, tail);
    memcpy(p, "***", 3);
    buf[cap - 1] = '\0';
  }
}

static int finish_err(s3client *c, s3sink_err *err, int code) {
  if (err && c) {
    const char *secrets[] = {c->secret_key, c->session_token};
    for (size_t i = 0; i < 2; i++) {
      scrub(err->msg, sizeof err->msg, secrets[i]);
      scrub(err->s3_code, sizeof err->s3_code, secrets[i]);
      scrub(err->request_id, sizeof err->request_id, secrets[i]);
    }
  }
  return code;
}

/* ---------------------------------------------------------------------------------------
 * Construction
 * ------------------------------------------------------------------------------------- */

/* Checks the settings that need no allocation, before anything is set up. */
static int check_config(const s3client_config *cfg, const char *region, s3sink_err *err) {
  int rc = endpoint_check_names(cfg->bucket, region, err);
  if (rc) return rc;
  bool anonymous = !cfg->access_key || !*cfg->access_key;
  if (!anonymous && (!cfg->secret_key || !*cfg->secret_key))
    return err_set(err, S3SINK_EINVAL,
                   "access_key is set but secret_key is empty: set both, or neither for "
                   "anonymous access");
  if (!anonymous) {
    for (const char *q = cfg->access_key; *q; q++)
      if ((unsigned char)*q <= ' ' || *q == '/' || *q == 0x7f)
        return err_set(err, S3SINK_EINVAL, "access_key holds blanks, '/' or control characters");
    for (const char *q = cfg->secret_key; *q; q++)
      if ((unsigned char)*q < ' ' || *q == 0x7f)
        return err_set(err, S3SINK_EINVAL, "secret_key holds control characters");
  }
  if (cfg->session_token)
    for (const char *q = cfg->session_token; *q; q++)
      if ((unsigned char)*q < ' ' || *q == 0x7f)
        return err_set(err, S3SINK_EINVAL, "session_token holds control characters");
  if (cfg->connect_timeout_ms < 0 || cfg->request_timeout_ms < 0)
    return err_set(err, S3SINK_EINVAL, "timeouts must be >= 0 (0: default)");
  return S3SINK_OK;
}

int s3client_new(const s3client_config *cfg, s3client **out, s3sink_err *err) {
  if (!out) return err_set(err, S3SINK_EINVAL, "s3client_new: out is NULL");
  *out = NULL;
  if (!cfg) return err_set(err, S3SINK_EINVAL, "s3client_new: config is NULL");
  const char *region = cfg->region && *cfg->region ? cfg->region : DEFAULT_REGION;
  int rc = check_config(cfg, region, err);
  if (rc) return rc;

  s3client *c = calloc(1, sizeof *c);
  if (!c) return err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
  c->anonymous = !cfg->access_key || !*cfg->access_key;
  c->bucket = xstrdup(cfg->bucket);
  c->region = xstrdup(region);
  if (!c->bucket || !c->region) goto oom;
  if (!c->anonymous) {
    c->access_key = xstrdup(cfg->access_key);
    c->secret_key = xstrdup(cfg->secret_key);
    if (!c->access_key || !c->secret_key) goto oom;
    if (cfg->session_token && *cfg->session_token) {
      c->session_token = xstrdup(cfg->session_token);
      if (!c->session_token) goto oom;
    }
  }
  s3http_options ho = {
      .connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS,
      .request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS,
      .insecure_tls = cfg->insecure_tls, .ca_file = cfg->ca_file, .user_agent = USER_AGENT};
  /* libcurl first: its URL parser reads the endpoint */
  if ((rc = s3http_init(&c->http, &ho, err)) ||
      (rc = endpoint_parse(&c->ep, cfg->endpoint, c->region, c->bucket, cfg->virtual_hosted, err))) {
    s3client_free(c);
    return rc;
  }
  if (cfg->nput_headers) {
    if (!(c->put_headers = calloc(cfg->nput_headers, sizeof *c->put_headers))) goto oom;
    c->nput_headers = cfg->nput_headers;
    for (size_t i = 0; i < cfg->nput_headers; i++) {
      c->put_headers[i].name = xstrdup(cfg->put_headers[i].name);
      c->put_headers[i].value = xstrdup(cfg->put_headers[i].value);
      if (!c->put_headers[i].name || !c->put_headers[i].value) goto oom;
    }
  }
  c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!c->sha256) {
    s3client_free(c);
    return err_set(err, S3SINK_ENOMEM, "OpenSSL has no SHA-256 digest");
  }
  *out = c;
  return S3SINK_OK;

oom:
  s3client_free(c);
  return err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
}

static void free_secret(char *s) {
  if (!s) return;
  OPENSSL_cleanse(s, strlen(s));
  free(s);
}

void s3client_free(s3client *c) {
  if (!c) return;
  s3http_cleanup(&c->http);
  endpoint_free(&c->ep);
  EVP_MD_free(c->sha256);
  free(c->region);
  free(c->bucket);
  free(c->access_key);
  free_secret(c->secret_key);
  free_secret(c->session_token);
  for (size_t i = 0; c->put_headers && i < c->nput_headers; i++) {
    free((char *)c->put_headers[i].name);
    free((char *)c->put_headers[i].value);
  }
  free(c->put_headers);
  free(c);
}

/* ---------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------- */

typedef enum s3op {
  OP_PUT_OBJECT,
  OP_GET_OBJECT,
  OP_DELETE_OBJECT,
  OP_HEAD_OBJECT,
  OP_HEAD_BUCKET,
  OP_DELETE_BUCKET,
  OP_CREATE_BUCKET,
  OP_LIST
} s3op;

/* Each operation's name (for messages) and HTTP method. */
static const struct {
  const char *name, *method;
} OPS[] = {
    [OP_PUT_OBJECT] = {"PutObject", "PUT"},
    [OP_GET_OBJECT] = {"GetObject", "GET"},
    [OP_DELETE_OBJECT] = {"DeleteObject", "DELETE"},
    [OP_HEAD_OBJECT] = {"HeadObject", "HEAD"},
    [OP_HEAD_BUCKET] = {"HeadBucket", "HEAD"},
    [OP_DELETE_BUCKET] = {"DeleteBucket", "DELETE"},
    [OP_CREATE_BUCKET] = {"CreateBucket", "PUT"},
    [OP_LIST] = {"ListObjectsV2", "GET"},
};

typedef struct request {
  s3op op;
  const char *key;          /* object operations */
  const char *query;        /* encoded, in canonical order, or NULL */
  s3body body;              /* .data NULL and .len 0: no body */
  const char *payload_hash; /* hex SHA-256 of the body, or NULL: the signer hashes it */
  s3sink_header extra[6];
  size_t nextra;
  const s3sink_header *settings; /* PutObject: the object settings, after extra */
  size_t nsettings;
} request;

/* Describes the object or bucket for messages: "object 'k' in bucket 'b'". */
static void describe(s3client *c, const request *r, char *buf, size_t cap) {
  if (r->key)
    snprintf(buf, cap, "object '%.300s' in bucket '%s'", r->key, c->bucket);
  else
    snprintf(buf, cap, "bucket '%s'", c->bucket);
}

/* Transport failure: curl's text, the endpoint and what to check. */
static int transport_error(s3client *c, const request *r, CURLcode cc, s3sink_err *err) {
  char what[512];
  describe(c, r, what, sizeof what);
  if (cc == CURLE_WRITE_ERROR && c->http.resp_oom)
    return err_set(err, S3SINK_ENOMEM,
                   "the response of %s of %s from %s is over %zu bytes (or memory ran out)",
                   OPS[r->op].name, what, c->ep.origin, c->http.resp.max);
  if (cc == CURLE_ABORTED_BY_CALLBACK && c->http.up_errno)
    return err_set(err, S3SINK_EINVAL, "cannot read the body of %s of %s from its file: %s",
                   OPS[r->op].name, what, strerror(c->http.up_errno));
  const char *why = c->http.errbuf[0] ? c->http.errbuf : curl_easy_strerror(cc);
  char hint[512];
  endpoint_addressing_hint(&c->ep, hint, sizeof hint);
  bool transient = true; /* the network or the server may recover */
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
    err_set(err, S3SINK_EHTTP, "cannot resolve the host of %s: %s; check the endpoint%s",
            c->ep.origin, why, hint);
    break;
  case CURLE_COULDNT_RESOLVE_PROXY:
    err_set(err, S3SINK_EHTTP,
            "cannot resolve the proxy for %s: %s; check the proxy variables (http_proxy, "
            "https_proxy; no_proxy names the hosts reached directly)",
            c->ep.origin, why);
    break;
  case CURLE_COULDNT_CONNECT:
    err_set(err, S3SINK_EHTTP,
            "cannot connect to %s: %s; check the endpoint and that the server is running%s",
            c->ep.origin, why, hint);
    break;
  case CURLE_OPERATION_TIMEDOUT:
    err_set(err, S3SINK_EHTTP,
            "%s of %s at %s timed out: %s; check the network, or raise "
            "connect_timeout_ms / request_timeout_ms",
            OPS[r->op].name, what, c->ep.origin, why);
    break;
  case CURLE_SSL_CONNECT_ERROR:
    err_set(err, S3SINK_EHTTP,
            "TLS handshake with %s failed: %s; if the server speaks plain HTTP, use an "
            "http:// endpoint, else check its TLS setup",
            c->ep.origin, why);
    break;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
    err_set(err, S3SINK_EHTTP,
            "TLS failure talking to %s: %s; check the scheme (http:// or https://), "
            "the server's certificate and ca_file (insecure_tls disables verification, "
            "for test servers only)",
            c->ep.origin, why);
    transient = false;
    break;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
  case CURLE_NOT_BUILT_IN:
    err_set(err, S3SINK_EHTTP, "libcurl cannot talk to %s: %s", c->ep.origin, why);
    transient = false;
    break;
  default:
    err_set(err, S3SINK_EHTTP, "%s of %s at %s failed: %s", OPS[r->op].name, what,
            c->ep.origin, why);
    break;
  }
  if (err) err->transient = transient;
  return finish_err(c, err, S3SINK_EHTTP);
}

/* Fills err from an S3 error response (already parsed into e). */
static int s3_error(s3client *c, const request *r, long status, const s3errors_doc *e,
                    s3sink_err *err) {
  char what[512];
  describe(c, r, what, sizeof what);
  char hint[512];
  endpoint_addressing_hint(&c->ep, hint, sizeof hint);
  s3errors_ctx ctx = {.op = OPS[r->op].name, .what = what, .key = r->key, .bucket = c->bucket,
                      .region = c->region, .endpoint = c->ep.origin,
                      .bucket_region = c->http.got.bucket_region, .body = c->http.resp.data,
                      .body_len = c->http.resp.len, .addressing = hint};
  s3errors_describe(&ctx, status, e, err);
  if (err) {
    err->http_status = status;
    snprintf(err->s3_code, sizeof err->s3_code, "%s", e->code);
    snprintf(err->request_id, sizeof err->request_id, "%s",
             e->request_id[0] ? e->request_id : c->http.got.request_id);
  }
  return finish_err(c, err, S3SINK_ES3);
}

/* One HTTP exchange. *status gets the HTTP status (0 on transport failure). The response
 * body is in c->http.resp (NUL-terminated). */
static int perform(s3client *c, const request *r, long *status, s3sink_err *err) {
  *status = 0;
  const char *method = OPS[r->op].method;
  bytebuf path, url;
  bytebuf_init(&path, 64 * 1024);
  bytebuf_init(&url, 64 * 1024);
  s3sink_sigv4_result sig;
  memset(&sig, 0, sizeof sig);
  int rc = S3SINK_OK;
  /* Host, the request's own, the object settings, then the 4 of the signature */
  s3sink_header *hdrs = malloc((1 + r->nextra + r->nsettings + 4) * sizeof *hdrs);
  size_t nh = 0;

  if (!endpoint_target(&c->ep, c->bucket, r->key, r->query, &path, &url) || !hdrs) {
    rc = err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
    goto done;
  }
  hdrs[nh++] = (s3sink_header){"Host", c->ep.host};
  for (size_t i = 0; i < r->nextra; i++) hdrs[nh++] = r->extra[i];
  for (size_t i = 0; i < r->nsettings; i++) hdrs[nh++] = r->settings[i];
  if (!c->anonymous) {
    s3sink_sigv4_request sreq = {
        .method = method, .path = path.data, .query = r->query, .headers = hdrs,
        .nheaders = nh, .payload_hash = r->payload_hash, .body = r->body.data,
        .body_len = r->body.data ? r->body.len : 0}; /* a body in a file comes hashed */
    s3sink_sigv4_params sp = {
        .access_key = c->access_key, .secret_key = c->secret_key,
        .session_token = c->session_token, .region = c->region, .service = "s3",
        .now = (int64_t)time(NULL) + c->clock_offset, .normalize = false,
        .add_content_sha256 = true, .expires = 0};
    rc = s3sink_sigv4_sign(&sreq, &sp, &sig, err);
    if (rc) goto done;
    hdrs[nh++] = (s3sink_header){"x-amz-date", sig.amz_date};
    hdrs[nh++] = (s3sink_header){"x-amz-content-sha256", sig.content_sha256};
    if (c->session_token) hdrs[nh++] = (s3sink_header){"x-amz-security-token", c->session_token};
    hdrs[nh++] = (s3sink_header){"Authorization", sig.authorization};
  }
  if (!s3http_set_headers(&c->http, hdrs, nh)) {
    rc = err_set(err, S3SINK_ENOMEM, "s3client: out of memory (or a header too long)");
    goto done;
  }
  size_t max = r->op == OP_GET_OBJECT ? MAX_GET_BYTES : MAX_RESPONSE_BYTES;
  CURLcode cc = s3http_exchange(&c->http, method, url.data, &r->body, max, status);
  if (cc != CURLE_OK)
    rc = transport_error(c, r, cc, err);
  else if (!bytebuf_terminate(&c->http.resp))
    rc = err_set(err, S3SINK_ENOMEM, "s3client: out of memory");

done:
  free(hdrs);
  s3sink_sigv4_result_free(&sig);
  bytebuf_free(&path);
  bytebuf_free(&url);
  return rc;
}

/* Server time from <ServerTime> or the Date header; -1 if neither is usable. */
static int64_t server_time(s3client *c, const s3errors_doc *e) {
  if (e && e->server_time[0]) {
    int64_t t;
    if (s3sink_text_parse_utc(e->server_time, &t)) return t;
  }
  if (c->http.got.date[0]) {
    time_t t = curl_getdate(c->http.got.date, NULL);
    if (t != (time_t)-1) return (int64_t)t;
  }
  return -1;
}

static void parse_error(s3client *c, s3errors_doc *e) {
  s3errors_parse(c->http.resp.data, c->http.resp.len, e);
}

/* Runs a request; on a 2xx returns OK with the body in c->http.resp. Handles clock skew
 * (one retry with the server's time) and turns error responses into s3sink_err. */
static int run(s3client *c, const request *r, long *status_out, s3sink_err *err) {
  long status = 0;
  for (int attempt = 0;; attempt++) {
    int rc = perform(c, r, &status, err);
    if (status_out) *status_out = status;
    if (rc) return finish_err(c, err, rc);
    if (status >= 200 && status < 300) return S3SINK_OK;

    s3errors_doc e;
    parse_error(c, &e);
    if (r->op == OP_HEAD_BUCKET) {
      /* HEAD responses have no body. */
      if (status == 404) {
        snprintf(e.code, sizeof e.code, "NoSuchBucket");
      } else if (status == 301 || status == 307) {
        snprintf(e.code, sizeof e.code, "PermanentRedirect");
      } else if (!e.code[0]) {
        /* Ask again with a GET, whose error body names the cause (wrong key, wrong
         * secret, expired token, clock skew, region, policy): a listing of no keys, which
         * takes the permission HeadBucket takes (GetBucketLocation would not do: S3 and
         * MinIO answer it whatever region the request is signed for). */
        request probe = {.op = OP_LIST, .query = "list-type=2&max-keys=0"};
        long pst = 0;
        s3sink_err perr;
        if (perform(c, &probe, &pst, &perr) == S3SINK_OK && pst >= 300) {
          s3errors_doc pe;
          parse_error(c, &pe);
          if (pe.code[0]) {
            e = pe;
            status = pst;
          }
        }
      }
    }
    if (!c->anonymous && attempt == 0 && (status == 403 || status == 400)) {
      /* Clock skew: adopt the server's time and sign again, once. */
      int64_t now = (int64_t)time(NULL);
      int64_t st = server_time(c, &e);
      bool skewed = strcmp(e.code, "RequestTimeTooSkewed") == 0 ||
                    (r->op == OP_HEAD_BUCKET && !e.code[0] && status == 403 && st >= 0 &&
                     llabs((long long)(st - (now + c->clock_offset))) > SKEW_LIMIT_S);
      if (skewed && st >= 0) {
        c->clock_offset = st - now;
        continue;
      }
    }
    if (r->op == OP_HEAD_BUCKET && !e.code[0] && status == 403) {
      snprintf(e.code, sizeof e.code, "AccessDenied");
      snprintf(e.message, sizeof e.message, "HTTP 403 with no details");
    }
    return s3_error(c, r, status, &e, err);
  }
}

/* Drops a large response buffer rather than keeping it for the client's life. */
static void trim_buffer(s3client *c) {
  if (c->http.resp.cap > KEEP_BUFFER_BYTES) bytebuf_free(&c->http.resp);
}

static int check_key(s3client *c, const char *key, s3sink_err *err) {
  (void)c;
  if (!key || !*key) return err_set(err, S3SINK_EINVAL, "object key is empty");
  if (strlen(key) > MAX_KEY_BYTES)
    return err_set(err, S3SINK_EINVAL, "object key is longer than %d bytes", MAX_KEY_BYTES);
  return S3SINK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------- */

/* PutObject of a body, with If-None-Match when asked and the body's identity in the
 * object's metadata. sha_hex gets the body's SHA-256. */
static int put(s3client *c, const char *key, const s3body *body, const char *content_type,
               bool if_none_match, bool settings, char sha_hex[65], s3sink_err *err) {
  if (!c) return err_set(err, S3SINK_EINVAL, "s3client is NULL");
  int rc = check_key(c, key, err);
  if (rc) return rc;
  if (body->len && !body->data && body->fd < 0)
    return err_set(err, S3SINK_EINVAL, "body has neither data nor a file");
  if (content_type && (!*content_type || strpbrk(content_type, "\r\n")))
    return err_set(err, S3SINK_EINVAL, "content_type is empty or holds a line break");
  /* The signed x-amz-content-sha256 makes S3 check the body (XAmzContentSHA256Mismatch):
   * no second hash for Content-MD5. */
  if ((rc = s3body_hash(body, c->sha256, sha_hex, err))) return rc;
  request r = {.op = OP_PUT_OBJECT, .key = key, .body = *body, .payload_hash = sha_hex};
  r.extra[r.nextra++] = (s3sink_header){"Content-Type",
                                        content_type ? content_type : "application/octet-stream"};
  if (if_none_match) r.extra[r.nextra++] = (s3sink_header){"If-None-Match", "*"};
  r.extra[r.nextra++] = (s3sink_header){S3HTTP_IDENTITY_HEADER, sha_hex};
  if (settings) {
    r.settings = c->put_headers;
    r.nsettings = c->nput_headers;
  }
  rc = run(c, &r, NULL, err);
  trim_buffer(c);
  return rc;
}

int s3client_put_object(s3client *c, const char *key, const void *body, size_t len,
                        const char *content_type, bool if_none_match, s3sink_err *err) {
  if (len && !body) return err_set(err, S3SINK_EINVAL, "body is NULL but len is %zu", len);
  s3body b = {.data = len ? body : "", .fd = -1, .len = len};
  char sha_hex[65];
  return put(c, key, &b, content_type, if_none_match, false, sha_hex, err);
}

int s3client_put_new_object(s3client *c, const char *key, const s3body *body,
                            const char *content_type, s3client_put_outcome *outcome,
                            s3sink_err *err) {
  s3sink_err local, *e = err ? err : &local; /* the S3 code is needed here */
  char sha_hex[65];
  *outcome = S3CLIENT_CREATED;
  int rc = put(c, key, body, content_type, true, true, sha_hex, e);
  if (!(rc == S3SINK_ES3 && (e->http_status == 412 || strcmp(e->s3_code, "PreconditionFailed") == 0)))
    return rc;
  /* The key exists: our own earlier attempt (a retry, or a request that libcurl re-sent
   * after the connection broke) carries this body's identity; anything else is foreign. */
  char identity[72];
  s3sink_err he;
  rc = s3client_head_object(c, key, NULL, 0, identity, sizeof identity, &he);
  if (rc == S3SINK_OK) {
    *outcome = strcmp(identity, sha_hex) == 0 ? S3CLIENT_ALREADY_THERE : S3CLIENT_TAKEN;
    return S3SINK_OK;
  }
  if (rc == S3SINK_ES3 && strcmp(he.s3_code, "NoSuchKey") == 0) {
    /* deleted between the two requests: putting it again may succeed */
    err_set(e, S3SINK_ES3, "object '%.300s' in bucket '%s' was there, then gone: "
            "someone deletes objects under the prefix", key, c->bucket);
    e->transient = true;
    return S3SINK_ES3;
  }
  if (err) *err = he;
  return rc;
}

int s3client_get_object(s3client *c, const char *key, char **body, size_t *len, s3sink_err *err) {
  if (!c || !body || !len) return err_set(err, S3SINK_EINVAL, "s3client_get_object: NULL argument");
  *body = NULL;
  *len = 0;
  int rc = check_key(c, key, err);
  if (rc) return rc;
  request r = {.op = OP_GET_OBJECT, .key = key};
  rc = run(c, &r, NULL, err);
  if (rc) {
    trim_buffer(c);
    return rc;
  }
  /* Hand the (NUL-terminated) buffer over; a new one grows on the next request. */
  if (!c->http.resp.data) {
    *body = calloc(1, 1);
    if (!*body) return err_set(err, S3SINK_ENOMEM, "out of memory");
  } else {
    *body = c->http.resp.data;
    *len = c->http.resp.len;
    bytebuf_init(&c->http.resp, SIZE_MAX);
  }
  return S3SINK_OK;
}

int s3client_delete_object(s3client *c, const char *key, s3sink_err *err) {
  if (!c) return err_set(err, S3SINK_EINVAL, "s3client is NULL");
  int rc = check_key(c, key, err);
  if (rc) return rc;
  request r = {.op = OP_DELETE_OBJECT, .key = key};
  return run(c, &r, NULL, err);
}

int s3client_head_object(s3client *c, const char *key, char *etag, size_t cap,
                         char *identity, size_t identity_cap, s3sink_err *err) {
  if (!c) return err_set(err, S3SINK_EINVAL, "s3client is NULL");
  int rc = check_key(c, key, err);
  if (rc) return rc;
  request r = {.op = OP_HEAD_OBJECT, .key = key};
  long status = 0;
  rc = run(c, &r, &status, err);
  if (rc == S3SINK_ES3 && status == 404 && err) snprintf(err->s3_code, sizeof err->s3_code, "NoSuchKey");
  if (rc == S3SINK_OK && etag && cap) snprintf(etag, cap, "%s", c->http.got.etag);
  if (rc == S3SINK_OK && identity && identity_cap) snprintf(identity, identity_cap, "%s", c->http.got.identity);
  return rc;
}

int s3client_delete_bucket(s3client *c, s3sink_err *err) {
  if (!c) return err_set(err, S3SINK_EINVAL, "s3client is NULL");
  request r = {.op = OP_DELETE_BUCKET};
  return run(c, &r, NULL, err);
}

int s3client_head_bucket(s3client *c, s3sink_err *err) {
  if (!c) return err_set(err, S3SINK_EINVAL, "s3client is NULL");
  request r = {.op = OP_HEAD_BUCKET};
  return run(c, &r, NULL, err);
}

int s3client_create_bucket(s3client *c, s3sink_err *err) {
  if (!c) return err_set(err, S3SINK_EINVAL, "s3client is NULL");
  request r = {.op = OP_CREATE_BUCKET};
  char body[256];
  if (strcmp(c->region, DEFAULT_REGION) != 0) {
    /* Outside us-east-1, S3 wants the region in the body (and refuses it inside). */
    int n = snprintf(body, sizeof body,
                     "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                     "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                     c->region);
    r.body = (s3body){.data = body, .fd = -1, .len = (size_t)n};
    r.extra[r.nextra++] = (s3sink_header){"Content-Type", "application/xml"};
  }
  s3sink_err local;
  s3sink_err *e = err ? err : &local;
  int rc = run(c, &r, NULL, e);
  if (rc == S3SINK_ES3 && strcmp(e->s3_code, "BucketAlreadyOwnedByYou") == 0) {
    memset(e, 0, sizeof *e);
    return S3SINK_OK; /* created meanwhile, by us */
  }
  return rc;
}

/* One ListObjectsV2 page in `page`: calls on_key for each entry, sets *next to the
 * continuation token (malloc'ed) or NULL when this was the last page. */
static int list_page(s3client *c, const bytebuf *page, s3client_key_fn on_key, void *ud,
                     char **next, s3sink_err *err) {
  *next = NULL;
  const char *s = page->data ? page->data : "", *end = s + page->len;
  const char *ts, *te, *after;
  if (!s3xml_find(s, end, "ListBucketResult", &ts, &te, NULL)) {
    char hint[512];
    endpoint_addressing_hint(&c->ep, hint, sizeof hint);
    return finish_err(c, err, err_set(err, S3SINK_ES3,
                                      "ListObjectsV2 of bucket '%s' at %s returned no "
                                      "ListBucketResult%s: is the endpoint an S3 server?%s",
                                      c->bucket, c->ep.origin,
                                      s3xml_find(s, end, "ListAllMyBucketsResult", &ts, &te, NULL)
                                          ? " but the list of all buckets (the server ignored "
                                            "the bucket in the host name)"
                                          : "",
                                      hint));
  }
  const char *lend = te;
  bytebuf key, num;
  bytebuf_init(&key, 64 * 1024);
  bytebuf_init(&num, 64);
  int rc = S3SINK_OK;
  const char *p = ts;
  const char *cs, *ce;
  while (s3xml_find(p, lend, "Contents", &cs, &ce, &after)) {
    const char *ks, *ke, *ss, *se;
    if (!s3xml_find(cs, ce, "Key", &ks, &ke, NULL) || !s3xml_text(ks, (size_t)(ke - ks), &key) ||
        strlen(key.data) != key.len) {
      rc = err_set(err, S3SINK_ES3, "ListObjectsV2 of bucket '%s' at %s returned an "
                   "entry without a readable <Key>", c->bucket, c->ep.origin);
      break;
    }
    int64_t size = -1;
    if (s3xml_find(cs, ce, "Size", &ss, &se, NULL) && s3xml_text(ss, (size_t)(se - ss), &num) &&
        num.len > 0 && num.len < 20) {
      size = 0;
      for (size_t i = 0; i < num.len && size >= 0; i++)
        size = (num.data[i] >= '0' && num.data[i] <= '9') ? size * 10 + (num.data[i] - '0') : -1;
    }
    if (size < 0) {
      rc = err_set(err, S3SINK_ES3, "ListObjectsV2 of bucket '%s' at %s returned a bad "
                   "<Size> for '%.300s'", c->bucket, c->ep.origin, key.data);
      break;
    }
    rc = on_key(ud, key.data, size);
    if (rc) break;
    p = after;
  }
  if (rc == S3SINK_OK) {
    char trunc[8];
    s3xml_copy(ts, lend, "IsTruncated", trunc, sizeof trunc);
    if (strcmp(trunc, "true") == 0) {
      const char *ns, *ne;
      if (!s3xml_find(ts, lend, "NextContinuationToken", &ns, &ne, NULL) || ns == ne ||
          !s3xml_text(ns, (size_t)(ne - ns), &key)) {
        rc = err_set(err, S3SINK_ES3, "ListObjectsV2 of bucket '%s' at %s is truncated "
                     "but has no NextContinuationToken", c->bucket, c->ep.origin);
      } else {
        *next = xstrndup(key.data, key.len);
        if (!*next) rc = err_set(err, S3SINK_ENOMEM, "out of memory");
      }
    }
  }
  bytebuf_free(&key);
  bytebuf_free(&num);
  return rc;
}

/* Appends `head` (text up to '=') and value, strictly encoded as the signer encodes it. */
static bool put_param(bytebuf *q, const char *head, const char *value) {
  return bytebuf_append_str(q, head) && uri_encode(q, value, strlen(value), false);
}

int s3client_list(s3client *c, const char *prefix, const char *start_after,
                  s3client_key_fn on_key, void *ud, s3sink_err *err) {
  if (!c || !on_key) return err_set(err, S3SINK_EINVAL, "s3client_list: NULL argument");
  char *token = NULL;
  int rc = S3SINK_OK;
  for (;;) {
    /* The query in canonical (sorted, strictly encoded) order. */
    bytebuf q;
    bytebuf_init(&q, SIZE_MAX);
    bool ok = true;
    if (token) ok = put_param(&q, "continuation-token=", token) && bytebuf_append_str(&q, "&");
    ok = ok && put_param(&q, "list-type=2&prefix=", prefix ? prefix : "");
    if (start_after && *start_after) ok = ok && put_param(&q, "&start-after=", start_after);
    ok = ok && bytebuf_terminate(&q);
    if (!ok) {
      bytebuf_free(&q);
      rc = err_set(err, S3SINK_ENOMEM, "out of memory");
      break;
    }
    request r = {.op = OP_LIST, .query = q.data};
    rc = run(c, &r, NULL, err);
    bytebuf_free(&q);
    if (rc) break;
    /* Parse from a detached buffer, so the callback may use the client. */
    bytebuf page = c->http.resp;
    bytebuf_init(&c->http.resp, SIZE_MAX);
    char *next = NULL;
    rc = list_page(c, &page, on_key, ud, &next, err);
    if (!c->http.resp.data && page.cap <= KEEP_BUFFER_BYTES) {
      c->http.resp = page;
      c->http.resp.len = 0;
    } else {
      bytebuf_free(&page);
    }
    if (rc || !next) {
      free(next);
      break;
    }
    if (token && strcmp(token, next) == 0) {
      free(next);
      rc = err_set(err, S3SINK_ES3, "ListObjectsV2 of bucket '%s' at %s returned the same "
                   "continuation token twice", c->bucket, c->ep.origin);
      break;
    }
    free(token);
    token = next;
  }
  free(token);
  return rc;
}
