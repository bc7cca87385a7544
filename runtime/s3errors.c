/* s3errors.c - S3 error responses: the table of codes, retry classification and messages
 * (see s3errors.h). A message template names its values in braces ("{bucket}"), so one
 * template serves several codes and the table stays one row per code. */
#include <stdio.h>
#include <string.h>

#include "s3errors.h"
#include "s3xml.h"

void s3errors_parse(const char *body, size_t len, s3errors_doc *e) {
  memset(e, 0, sizeof *e);
  if (!len) return;
  const char *end = body + len, *ts, *te;
  if (!s3xml_find(body, end, "Error", &ts, &te, NULL)) return;
  s3xml_copy(ts, te, "Code", e->code, sizeof e->code);
  s3xml_copy(ts, te, "Message", e->message, sizeof e->message);
  s3xml_copy(ts, te, "RequestId", e->request_id, sizeof e->request_id);
  s3xml_copy(ts, te, "Region", e->region, sizeof e->region);
  s3xml_copy(ts, te, "ServerTime", e->server_time, sizeof e->server_time);
}

static const char NO_BUCKET[] =
    "bucket '{bucket}' does not exist at {endpoint}: create it or set create_bucket";
static const char NO_KEY[] = "object '{key}' does not exist in bucket '{bucket}' at {endpoint}";
static const char BAD_ACCESS_KEY[] =
    "the access key was rejected by {endpoint} (InvalidAccessKeyId: {message}): check the "
    "credentials (access_key)";
static const char BAD_SECRET[] =
    "the secret key was rejected by {endpoint} (SignatureDoesNotMatch): check the credentials "
    "(secret_key; also region, and that no proxy rewrites requests)";
static const char BAD_TOKEN[] =
    "the session token was rejected by {endpoint} ({code}: {message}): refresh the temporary "
    "credentials (session_token with its access_key and secret_key)";
static const char DENIED[] =
    "access denied for {op} of {what} at {endpoint} ({message}): check the credentials and "
    "that their policy allows {op}";
static const char KEY_TAKEN[] =
    "object '{key}' already exists in bucket '{bucket}' at {endpoint} (If-None-Match): it was "
    "not overwritten; use another key or prefix";
static const char SKEWED[] =
    "the local clock differs too much from the server's at {endpoint} ({message}), even after "
    "correcting it once: fix the system clock (NTP)";
static const char BAD_REGION[] =
    "{endpoint} rejected region '{region}' ({code}: {message}): set region{region_hint}";
static const char REDIRECT[] =
    "bucket '{bucket}' is not served by {endpoint} in region '{region}'{bucket_region}: set "
    "region (and endpoint) to the bucket's";
static const char BUCKET_TAKEN[] =
    "bucket '{bucket}' already exists and belongs to someone else: choose another bucket name";
static const char BAD_BUCKET_NAME[] =
    "bucket name '{bucket}' is invalid for {endpoint} ({message}): choose a valid name";
static const char CORRUPTED[] =
    "{op} of {what} was corrupted in transit ({code}: {message}): retry; check proxies that "
    "modify request bodies";
static const char TOO_LARGE[] =
    "{op} of {what} is too large for {endpoint} ({message}): lower write_interval_ms or "
    "max_buffer_bytes";
/* when no row has a message */
static const char SERVER_FAILED[] =
    "{op} of {what} at {endpoint} failed with HTTP {status} ({code}: {message}): the server "
    "is unavailable or overloaded; retry later";
static const char FAILED[] = "{op} of {what} at {endpoint} failed: {message} ({code}, HTTP {status})";
static const char NOT_S3[] =
    "{op} of {what} at {endpoint} failed with HTTP {status}{body}: is the endpoint an S3 "
    "server?{addressing}";
/* a virtual-hosted request that a path-style server took for one on the service root */
static const char ROOT_ANSWER[] =
    "{op} of {what} at {endpoint} failed with HTTP {status}: the server answered with its "
    "list of all buckets, so it ignored the bucket in the host name{addressing}";

/* A row matches a response with its code, or with its status (for status_op only, if
 * set). Transient: sending the same request again may succeed (the server is busy or
 * failing, throttles, timed out, or the body was damaged in transit); everything else
 * needs a change of settings. */
typedef struct rule {
  const char *code;
  long status;
  const char *status_op;
  bool transient;
  const char *text; /* NULL: the message by status */
} rule;

/* In order: the first matching row with a text gives the message. */
static const rule RULES[] = {
    {"NoSuchBucket", 0, NULL, false, NO_BUCKET},
    {"NoSuchKey", 0, NULL, false, NO_KEY},
    {"InvalidAccessKeyId", 0, NULL, false, BAD_ACCESS_KEY},
    {"SignatureDoesNotMatch", 0, NULL, false, BAD_SECRET},
    {"InvalidToken", 0, NULL, false, BAD_TOKEN},
    {"ExpiredToken", 0, NULL, false, BAD_TOKEN},
    {"InvalidTokenId", 0, NULL, false, BAD_TOKEN},
    {"TokenRefreshRequired", 0, NULL, false, BAD_TOKEN},
    {"ExpiredTokenException", 0, NULL, false, BAD_TOKEN},
    {"AccessDenied", 0, NULL, false, DENIED},
    {"AllAccessDisabled", 0, NULL, false, DENIED},
    {"PreconditionFailed", 412, "PutObject", false, KEY_TAKEN}, /* If-None-Match */
    {"RequestTimeTooSkewed", 0, NULL, true, SKEWED},
    {"AuthorizationHeaderMalformed", 0, NULL, false, BAD_REGION},
    {"AuthorizationQueryParametersError", 0, NULL, false, BAD_REGION},
    {"InvalidRegion", 0, NULL, false, BAD_REGION},
    {"IllegalLocationConstraintException", 0, NULL, false, BAD_REGION},
    {"PermanentRedirect", 301, NULL, false, REDIRECT},
    {"TemporaryRedirect", 307, NULL, false, REDIRECT},
    {"BucketAlreadyExists", 0, NULL, false, BUCKET_TAKEN},
    {"InvalidBucketName", 0, NULL, false, BAD_BUCKET_NAME},
    {"XAmzContentSHA256Mismatch", 0, NULL, true, CORRUPTED},
    {"BadDigest", 0, NULL, true, CORRUPTED},
    {"InvalidDigest", 0, NULL, false, CORRUPTED}, /* a wrong Content-MD5 is ours: no retry */
    {"IncompleteBody", 0, NULL, true, CORRUPTED},
    {"EntityTooLarge", 0, NULL, false, TOO_LARGE},
    {"SlowDown", 429, NULL, true, NULL},
    {"RequestTimeout", 408, NULL, true, NULL},
    {"InternalError", 0, NULL, true, NULL},
    {"ServiceUnavailable", 0, NULL, true, NULL},
    {"OperationAborted", 0, NULL, true, NULL},
    {"ConditionalRequestConflict", 0, NULL, true, NULL},
};

static bool matches(const rule *r, const s3errors_ctx *ctx, long status, const s3errors_doc *e) {
  if (strcmp(r->code, e->code) == 0) return true;
  return r->status && r->status == status && (!r->status_op || strcmp(r->status_op, ctx->op) == 0);
}

/* Appends s[0..len) to out (capacity cap, NUL-terminated at *n), truncating. */
static void put(char *out, size_t cap, size_t *n, const char *s, size_t len) {
  if (len > cap - 1 - *n) len = cap - 1 - *n;
  memcpy(out + *n, s, len);
  *n += len;
  out[*n] = '\0';
}

/* Writes the template with its {names} replaced into out (capacity cap). */
static void expand(const char *text, const s3errors_ctx *ctx, long status, const s3errors_doc *e,
                   char *out, size_t cap) {
  char key[301], num[24], hint[96], where[96], snippet[160], body[168];
  snprintf(key, sizeof key, "%s", ctx->key ? ctx->key : "");
  snprintf(num, sizeof num, "%ld", status);
  if (e->region[0])
    snprintf(hint, sizeof hint, " to '%s'", e->region);
  else
    snprintf(hint, sizeof hint, " to the bucket's region");
  where[0] = '\0';
  if (ctx->bucket_region[0]) snprintf(where, sizeof where, " (it is in '%s')", ctx->bucket_region);
  /* Not an S3 error document: the beginning of the body, printable bytes only. */
  size_t sn = 0;
  for (size_t i = 0; i < ctx->body_len && sn < sizeof snippet - 1; i++) {
    unsigned char ch = (unsigned char)ctx->body[i];
    snippet[sn++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
  }
  snippet[sn] = '\0';
  body[0] = '\0';
  if (sn) snprintf(body, sizeof body, " (\"%s\")", snippet);
  const struct {
    const char *name, *value;
  } vars[] = {
      {"op", ctx->op},
      {"what", ctx->what},
      {"key", key},
      {"bucket", ctx->bucket},
      {"region", ctx->region},
      {"endpoint", ctx->endpoint},
      {"status", num},
      {"code", e->code[0] ? e->code : "no code"},
      {"message", e->message[0] ? e->message : "no message"},
      {"region_hint", hint},
      {"bucket_region", where},
      {"body", body},
      {"addressing", ctx->addressing ? ctx->addressing : ""},
  };
  size_t n = 0;
  out[0] = '\0';
  const char *p = text, *open, *close;
  while ((open = strchr(p, '{')) != NULL && (close = strchr(open, '}')) != NULL) {
    put(out, cap, &n, p, (size_t)(open - p));
    size_t len = (size_t)(close - open - 1);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
      if (strlen(vars[i].name) == len && memcmp(vars[i].name, open + 1, len) == 0)
        put(out, cap, &n, vars[i].value, strlen(vars[i].value));
    p = close + 1;
  }
  put(out, cap, &n, p, strlen(p));
}

/* Whether body[0..len) contains the text s. */
static bool contains(const char *body, size_t len, const char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; body && i + n <= len; i++)
    if (memcmp(body + i, s, n) == 0) return true;
  return false;
}

int s3errors_describe(const s3errors_ctx *ctx, long status, const s3errors_doc *e,
                      s3sink_err *err) {
  const char *text = NULL;
  bool transient = status >= 500;
  for (size_t i = 0; i < sizeof RULES / sizeof RULES[0]; i++) {
    if (!matches(&RULES[i], ctx, status, e)) continue;
    if (!text) text = RULES[i].text;
    transient = transient || RULES[i].transient;
  }
  if (!text) text = status >= 500 ? SERVER_FAILED : e->code[0] ? FAILED : NOT_S3;
  if (text == NOT_S3 && ctx->addressing && *ctx->addressing &&
      contains(ctx->body, ctx->body_len, "<ListAllMyBucketsResult"))
    text = ROOT_ANSWER;
  if (!err) return S3SINK_ES3;
  char msg[sizeof err->msg];
  expand(text, ctx, status, e, msg, sizeof msg);
  err_set(err, S3SINK_ES3, "%s", msg);
  err->transient = transient;
  return S3SINK_ES3;
}
