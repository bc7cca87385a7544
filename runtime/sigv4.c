/* sigv4.c - AWS Signature Version 4: header signing and presigned URLs, on OpenSSL 3.
 *
 * Two path modes:
 *  - S3 (normalize=false): the canonical URI is the path as sent. Escapes already in it
 *    (%XX) are kept as they are, nothing is decoded, no dot segment is removed and no '//'
 *    collapsed. Only bytes that cannot appear raw in a request target (space, non-ASCII,
 *    '+', ...) are percent-encoded, once, so a path built by a correct encoder is used
 *    verbatim.
 *  - generic (normalize=true): dot segments are removed, runs of '/' collapsed, and every
 *    segment is URI-encoded again (a '%' becomes "%25"), as most AWS services expect.
 *
 * Query: split on '&', each pair on its first '='; keys and values are decoded (%XX, and
 * '+' as a space, as servers read it) and encoded again with the strict set (unreserved
 * kept, everything else %XX uppercase), then sorted by key and value.
 *
 * Presigning puts X-Amz-Security-Token in the (signed) query, ignores add_content_sha256,
 * drops the caller's own X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders/
 * Security-Token/Signature parameters, and signs UNSIGNED-PAYLOAD for service "s3" unless
 * payload_hash is given (other services: the hash of the body).
 *
 * The signer is a pure function of the request, the credentials and `now`. It never prints
 * and never keeps state between calls. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ascii.h"
#include "bytebuf.h"
#include "error.h"
#include "uri.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MAX_EXPIRES 604800

/* ---------------------------------------------------------------------------------------
 * Small string builder: a bytebuf with a sticky failure flag, so a sequence of appends is
 * checked once at the end.
 * ------------------------------------------------------------------------------------- */

typedef struct sb {
  bytebuf b;
  bool failed;
} sb;

static void sb_init(sb *s) {
  bytebuf_init(&s->b, SIZE_MAX);
  s->failed = false;
}

static void sb_put(sb *s, const void *p, size_t n) {
  if (!s->failed && !bytebuf_append(&s->b, p, n)) s->failed = true;
}

static void sb_puts(sb *s, const char *str) { sb_put(s, str, strlen(str)); }

static void sb_putc(sb *s, char c) { sb_put(s, &c, 1); }

/* Detaches the NUL-terminated text (malloc'ed) or returns NULL on failure; s is emptied
 * either way. */
static char *sb_take(sb *s) {
  sb_putc(s, '\0');
  if (s->failed) {
    bytebuf_free(&s->b);
    return NULL;
  }
  char *p = s->b.data;
  s->b.data = NULL;
  s->b.len = s->b.cap = 0;
  return p;
}

/* ---------------------------------------------------------------------------------------
 * Character classes and URI encoding (locale independent).
 * ------------------------------------------------------------------------------------- */

/* Strict encoding: unreserved kept, every other byte %XX (uppercase). */
static void sb_encode(sb *s, const char *p, size_t n) {
  if (!s->failed && !uri_encode(&s->b, p, n, false)) s->failed = true;
}

static bool has_ctl(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 && *s != '\t') return true;
  return false;
}

/* RFC 7230 token characters (method and header names). */
static bool is_token(const char *s) {
  if (!*s) return false;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c)) return false;
  }
  return true;
}

/* ---------------------------------------------------------------------------------------
 * OpenSSL: SHA-256 and HMAC-SHA256 over EVP_sha256(), a built-in constant: signing fetches
 * no algorithm objects and keeps nothing between calls.
 * ------------------------------------------------------------------------------------- */

static bool sha256_hex(const void *p, size_t n, char out[65]) {
  unsigned char d[32];
  unsigned int len = 0;
  if (EVP_Digest(p, n, d, &len, EVP_sha256(), NULL) != 1 || len != 32) return false;
  ascii_hex(d, 32, out);
  return true;
}

static bool hmac(const void *key, size_t keylen, const void *p, size_t n, unsigned char out[32]) {
  unsigned int len = 0;
  return keylen <= INT32_MAX &&
         HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &len) != NULL && len == 32;
}

/* ---------------------------------------------------------------------------------------
 * Canonical URI
 * ------------------------------------------------------------------------------------- */

/* S3: the path as sent; well-formed %XX escapes and '/' kept, raw bytes that need escaping
 * encoded once. */
static void canonical_uri_s3(sb *s, const char *path) {
  for (size_t i = 0; path[i]; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c == '%' && ascii_hexval((unsigned char)path[i + 1]) >= 0 &&
        ascii_hexval((unsigned char)path[i + 2]) >= 0) {
      sb_put(s, path + i, 3);
      i += 2;
    } else if (c == '/') {
      sb_putc(s, '/');
    } else {
      sb_encode(s, path + i, 1);
    }
  }
}

typedef struct seg {
  const char *p;
  size_t n;
} seg;

/* Generic: remove dot segments and empty segments, then encode each segment again. */
static bool canonical_uri_normalized(sb *s, const char *path) {
  size_t cap = 1;
  for (const char *q = path; *q; q++)
    if (*q == '/') cap++;
  seg *segs = malloc(cap * sizeof *segs);
  if (!segs) return false;
  size_t n = 0;
  bool trailing = false;
  const char *q = path;
  while (*q) {
    while (*q == '/') q++;
    if (!*q) {
      trailing = true;
      break;
    }
    const char *e = strchr(q, '/');
    size_t len = e ? (size_t)(e - q) : strlen(q);
    /* A final "." or ".." names a directory: keep the trailing slash (RFC 3986 5.2.4). */
    bool last = !e || !e[strspn(e, "/")];
    if (len == 1 && q[0] == '.') {
      if (last) trailing = true;
    } else if (len == 2 && q[0] == '.' && q[1] == '.') {
      if (n) n--;
      if (last) trailing = true;
    } else {
      segs[n].p = q;
      segs[n].n = len;
      n++;
      trailing = false;
    }
    q += len;
  }
  sb_putc(s, '/');
  for (size_t i = 0; i < n; i++) {
    if (i) sb_putc(s, '/');
    sb_encode(s, segs[i].p, segs[i].n);
  }
  if (n && trailing) sb_putc(s, '/');
  free(segs);
  return true;
}

/* ---------------------------------------------------------------------------------------
 * Canonical query
 * ------------------------------------------------------------------------------------- */

typedef struct qparam {
  char *key; /* strictly encoded */
  char *val;
} qparam;

typedef struct qlist {
  qparam *v;
  size_t n, cap;
} qlist;

static void qlist_free(qlist *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].key);
    free(l->v[i].val);
  }
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* Takes ownership of key and val (both may be NULL on an earlier allocation failure). */
static bool qlist_push(qlist *l, char *key, char *val) {
  if (!key || !val) goto fail;
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 16;
    qparam *nv = realloc(l->v, ncap * sizeof *nv);
    if (!nv) goto fail;
    l->v = nv;
    l->cap = ncap;
  }
  l->v[l->n].key = key;
  l->v[l->n].val = val;
  l->n++;
  return true;
fail:
  free(key);
  free(val);
  return false;
}

/* Decodes p[0..n) (%XX, '+' as space as servers read it) and re-encodes it strictly. */
static char *requote(const char *p, size_t n) {
  sb s;
  sb_init(&s);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%' && i + 2 < n && ascii_hexval((unsigned char)p[i + 1]) >= 0 &&
        ascii_hexval((unsigned char)p[i + 2]) >= 0) {
      c = (unsigned char)(ascii_hexval((unsigned char)p[i + 1]) * 16 +
                          ascii_hexval((unsigned char)p[i + 2]));
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    sb_encode(&s, (const char *)&c, 1);
  }
  return sb_take(&s);
}

static char *encode_str(const char *p) {
  sb s;
  sb_init(&s);
  sb_encode(&s, p, strlen(p));
  return sb_take(&s);
}

/* Query parameters the presigner adds itself; the caller's copies are dropped. */
static bool is_presign_param(const char *key) {
  static const char *const names[] = {"X-Amz-Algorithm", "X-Amz-Credential",
                                      "X-Amz-Date",      "X-Amz-Expires",
                                      "X-Amz-SignedHeaders", "X-Amz-Security-Token",
                                      "X-Amz-Signature", NULL};
  for (const char *const *n = names; *n; n++)
    if (strcmp(key, *n) == 0) return true;
  return false;
}

static bool parse_query(qlist *l, const char *query, bool presign) {
  if (!query) return true;
  const char *p = query;
  while (*p) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len) {
      const char *eq = memchr(p, '=', len);
      size_t klen = eq ? (size_t)(eq - p) : len;
      char *key = requote(p, klen);
      char *val = eq ? requote(eq + 1, len - klen - 1) : strdup("");
      if (presign && key && is_presign_param(key)) {
        free(key);
        free(val);
      } else if (!qlist_push(l, key, val)) {
        return false;
      }
    }
    p += len;
    if (*p == '&') p++;
  }
  return true;
}

static int qparam_cmp(const void *a, const void *b) {
  const qparam *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  return r ? r : strcmp(x->val, y->val);
}

/* ---------------------------------------------------------------------------------------
 * Canonical headers
 * ------------------------------------------------------------------------------------- */

typedef struct chdr {
  char *name;  /* lowercase */
  char *value; /* trimmed, inner runs of blanks collapsed */
  size_t order;
} chdr;

typedef struct hlist {
  chdr *v;
  size_t n, cap;
} hlist;

static void hlist_free(hlist *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].value);
  }
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

static bool hlist_push(hlist *l, const char *name, const char *value) {
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 16;
    chdr *nv = realloc(l->v, ncap * sizeof *nv);
    if (!nv) return false;
    l->v = nv;
    l->cap = ncap;
  }
  char *n = strdup(name);
  sb s;
  sb_init(&s);
  const char *v = value;
  while (*v == ' ' || *v == '\t') v++;
  bool blank = false;
  for (; *v; v++) {
    if (*v == ' ' || *v == '\t') {
      blank = true;
    } else {
      if (blank) sb_putc(&s, ' ');
      blank = false;
      sb_putc(&s, *v);
    }
  }
  char *val = sb_take(&s);
  if (!n || !val) {
    free(n);
    free(val);
    return false;
  }
  for (char *c = n; *c; c++) *c = ascii_lower(*c);
  l->v[l->n].name = n;
  l->v[l->n].value = val;
  l->v[l->n].order = l->n;
  l->n++;
  return true;
}

static int chdr_cmp(const void *a, const void *b) {
  const chdr *x = a, *y = b;
  int r = strcmp(x->name, y->name);
  if (r) return r;
  return (x->order > y->order) - (x->order < y->order);
}

/* Hop-by-hop or volatile headers that proxies and transports may change. */
static bool is_skipped_header(const char *name) {
  static const char *const names[] = {"user-agent", "expect",  "connection",
                                      "transfer-encoding", "x-amzn-trace-id",
                                      "authorization", NULL};
  for (const char *const *n = names; *n; n++)
    if (ascii_ieq(name, *n)) return true;
  return false;
}

/* ---------------------------------------------------------------------------------------
 * Signing
 * ------------------------------------------------------------------------------------- */

static bool valid_param(const char *s) { return s && *s && !has_ctl(s); }

/* Scope parts may not contain '/' (the credential separator) or blanks. */
static bool valid_scope_part(const char *s) {
  if (!valid_param(s)) return false;
  for (; *s; s++)
    if (*s == '/' || *s == ' ' || *s == '\t') return false;
  return true;
}

static int check_input(const s3sink_sigv4_request *req, const s3sink_sigv4_params *p,
                       bool presign, s3sink_err *err) {
  if (!req || !p) return err_set(err, S3SINK_EINVAL, "sigv4: request and params are required");
  if (!req->method || !is_token(req->method))
    return err_set(err, S3SINK_EINVAL, "sigv4: method must be an HTTP method token such as \"GET\"");
  if (!req->path || req->path[0] != '/' || has_ctl(req->path) || strchr(req->path, '?') ||
      strchr(req->path, '#'))
    return err_set(err, S3SINK_EINVAL,
                   "sigv4: path must start with '/' and hold no '?', '#' or control "
                   "characters (pass the query separately)");
  if (req->query && (has_ctl(req->query) || strchr(req->query, '#')))
    return err_set(err, S3SINK_EINVAL, "sigv4: query holds control characters or '#'");
  if (req->nheaders && !req->headers)
    return err_set(err, S3SINK_EINVAL, "sigv4: headers is NULL but nheaders is %zu", req->nheaders);
  if (req->body_len && !req->body)
    return err_set(err, S3SINK_EINVAL, "sigv4: body is NULL but body_len is %zu", req->body_len);
  if (req->payload_hash) {
    const char *h = req->payload_hash;
    if (!*h || strpbrk(h, " \t") || has_ctl(h))
      return err_set(err, S3SINK_EINVAL,
                     "sigv4: payload_hash must be a hex SHA-256 or UNSIGNED-PAYLOAD");
  }
  if (!valid_scope_part(p->access_key))
    return err_set(err, S3SINK_EINVAL,
                   "sigv4: access_key is required (no '/', blanks or control characters)");
  if (!valid_param(p->secret_key))
    return err_set(err, S3SINK_EINVAL, "sigv4: secret_key is required");
  if (p->session_token && has_ctl(p->session_token))
    return err_set(err, S3SINK_EINVAL, "sigv4: session_token holds control characters");
  if (!valid_scope_part(p->region))
    return err_set(err, S3SINK_EINVAL, "sigv4: region is required, e.g. \"us-east-1\"");
  if (!valid_scope_part(p->service))
    return err_set(err, S3SINK_EINVAL, "sigv4: service is required, e.g. \"s3\"");
  if (p->now < 0 || p->now > INT64_C(253402300799))
    return err_set(err, S3SINK_EINVAL, "sigv4: time %lld is out of range (0 to year 9999)",
                   (long long)p->now);
  if (presign && (p->expires < 1 || p->expires > MAX_EXPIRES))
    return err_set(err, S3SINK_EINVAL, "sigv4: expires must be 1..%d seconds, got %lld",
                   MAX_EXPIRES, (long long)p->expires);
  bool host = false;
  for (size_t i = 0; i < req->nheaders; i++) {
    const s3sink_header *h = &req->headers[i];
    if (!h->name || !is_token(h->name))
      return err_set(err, S3SINK_EINVAL, "sigv4: header %zu has an invalid name", i);
    if (!h->value || has_ctl(h->value))
      return err_set(err, S3SINK_EINVAL,
                     "sigv4: header '%s' has no value or holds control characters", h->name);
    if (ascii_ieq(h->name, "host")) host = true;
  }
  if (!host) return err_set(err, S3SINK_EINVAL, "sigv4: the headers must include Host");
  return S3SINK_OK;
}

/* One signature in the making: the stages below fill it in order. */
typedef struct signing {
  const s3sink_sigv4_request *req;
  const s3sink_sigv4_params *p;
  bool presign;
  bool token;            /* a session token is set */
  char amz_date[17];     /* "20130524T000000Z" */
  char *scope;           /* "20130524/us-east-1/s3/aws4_request" */
  char body_hash[65];
  const char *payload;   /* the payload hash that is signed */
  hlist headers;         /* canonical headers, sorted */
  char *signed_headers;  /* "host;x-amz-date" */
  char *query;           /* canonical query */
  char *canonical;       /* canonical request */
  char *sts;             /* string to sign */
  char signature[65];
} signing;

static int oom(s3sink_err *err) { return err_set(err, S3SINK_ENOMEM, "sigv4: out of memory"); }

static void signing_free(signing *g) {
  free(g->scope);
  hlist_free(&g->headers);
  free(g->signed_headers);
  free(g->query);
  free(g->canonical);
  free(g->sts);
}

/* Dates, credential scope and the payload hash. */
static int prepare(signing *g, s3sink_err *err) {
  const s3sink_sigv4_params *p = g->p;
  time_t t = (time_t)p->now;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(g->amz_date, sizeof g->amz_date, "%Y%m%dT%H%M%SZ", &tm) != 16)
    return err_set(err, S3SINK_EINVAL, "sigv4: cannot format time %lld", (long long)p->now);
  sb s;
  sb_init(&s);
  sb_put(&s, g->amz_date, 8);
  sb_putc(&s, '/');
  sb_puts(&s, p->region);
  sb_putc(&s, '/');
  sb_puts(&s, p->service);
  sb_puts(&s, "/aws4_request");
  if (!(g->scope = sb_take(&s))) return oom(err);
  g->token = p->session_token && *p->session_token;
  g->payload = g->req->payload_hash;
  if (!g->payload && g->presign && strcmp(p->service, "s3") == 0) g->payload = "UNSIGNED-PAYLOAD";
  if (!g->payload) {
    const s3sink_sigv4_request *r = g->req;
    if (!sha256_hex(r->body_len ? r->body : "", r->body_len, g->body_hash))
      return err_set(err, S3SINK_ENOMEM, "sigv4: SHA-256 failed");
    g->payload = g->body_hash;
  }
  return S3SINK_OK;
}

/* The caller's headers (minus skipped ones and those we set), then ours, sorted; and the
 * signed header list. */
static int canonical_headers(signing *g, s3sink_err *err) {
  const s3sink_sigv4_request *req = g->req;
  bool add_sha = g->p->add_content_sha256 && !g->presign;
  hlist *hl = &g->headers;
  for (size_t i = 0; i < req->nheaders; i++) {
    const char *name = req->headers[i].name;
    if (is_skipped_header(name) || ascii_ieq(name, "x-amz-date") ||
        (g->token && ascii_ieq(name, "x-amz-security-token")) ||
        (add_sha && ascii_ieq(name, "x-amz-content-sha256")))
      continue;
    if (!hlist_push(hl, name, req->headers[i].value)) return oom(err);
  }
  if (!g->presign && (!hlist_push(hl, "x-amz-date", g->amz_date) ||
                      (g->token && !hlist_push(hl, "x-amz-security-token", g->p->session_token)) ||
                      (add_sha && !hlist_push(hl, "x-amz-content-sha256", g->payload))))
    return oom(err);
  if (hl->n > 1) qsort(hl->v, hl->n, sizeof *hl->v, chdr_cmp);
  sb s;
  sb_init(&s);
  for (size_t i = 0; i < hl->n; i++) {
    if (i && strcmp(hl->v[i].name, hl->v[i - 1].name) == 0) continue;
    if (i) sb_putc(&s, ';');
    sb_puts(&s, hl->v[i].name);
  }
  return (g->signed_headers = sb_take(&s)) ? S3SINK_OK : oom(err);
}

/* The caller's query and, when presigning, the X-Amz-* parameters, sorted. */
static int canonical_query(signing *g, s3sink_err *err) {
  const s3sink_sigv4_params *p = g->p;
  qlist ql = {0};
  bool ok = parse_query(&ql, g->req->query, g->presign);
  if (ok && g->presign) {
    sb cred;
    sb_init(&cred);
    sb_puts(&cred, p->access_key);
    sb_putc(&cred, '/');
    sb_puts(&cred, g->scope);
    char *credential = sb_take(&cred);
    char expires[24];
    snprintf(expires, sizeof expires, "%lld", (long long)p->expires);
    ok = credential &&
         qlist_push(&ql, strdup("X-Amz-Algorithm"), strdup(ALGORITHM)) &&
         qlist_push(&ql, strdup("X-Amz-Credential"), encode_str(credential)) &&
         qlist_push(&ql, strdup("X-Amz-Date"), strdup(g->amz_date)) &&
         qlist_push(&ql, strdup("X-Amz-Expires"), strdup(expires)) &&
         (!g->token ||
          qlist_push(&ql, strdup("X-Amz-Security-Token"), encode_str(p->session_token))) &&
         qlist_push(&ql, strdup("X-Amz-SignedHeaders"), encode_str(g->signed_headers));
    free(credential);
  }
  if (ok) {
    if (ql.n > 1) qsort(ql.v, ql.n, sizeof *ql.v, qparam_cmp);
    sb q;
    sb_init(&q);
    for (size_t i = 0; i < ql.n; i++) {
      if (i) sb_putc(&q, '&');
      sb_puts(&q, ql.v[i].key);
      sb_putc(&q, '=');
      sb_puts(&q, ql.v[i].val);
    }
    ok = (g->query = sb_take(&q)) != NULL;
  }
  qlist_free(&ql);
  return ok ? S3SINK_OK : oom(err);
}

static int canonical_request(signing *g, s3sink_err *err) {
  sb s;
  sb_init(&s);
  sb_puts(&s, g->req->method);
  sb_putc(&s, '\n');
  if (g->p->normalize) {
    if (!canonical_uri_normalized(&s, g->req->path)) s.failed = true;
  } else {
    canonical_uri_s3(&s, g->req->path);
  }
  sb_putc(&s, '\n');
  sb_puts(&s, g->query);
  sb_putc(&s, '\n');
  const hlist *hl = &g->headers;
  for (size_t i = 0; i < hl->n; i++) {
    bool first = i == 0 || strcmp(hl->v[i].name, hl->v[i - 1].name) != 0;
    if (first) { /* repeated headers: one line, values joined by ',' */
      if (i) sb_putc(&s, '\n');
      sb_puts(&s, hl->v[i].name);
      sb_putc(&s, ':');
    } else {
      sb_putc(&s, ',');
    }
    sb_puts(&s, hl->v[i].value);
  }
  sb_puts(&s, "\n\n");
  sb_puts(&s, g->signed_headers);
  sb_putc(&s, '\n');
  sb_puts(&s, g->payload);
  return (g->canonical = sb_take(&s)) ? S3SINK_OK : oom(err);
}

static int string_to_sign(signing *g, s3sink_err *err) {
  char creq_hash[65];
  if (!sha256_hex(g->canonical, strlen(g->canonical), creq_hash))
    return err_set(err, S3SINK_ENOMEM, "sigv4: SHA-256 failed");
  sb s;
  sb_init(&s);
  sb_puts(&s, ALGORITHM "\n");
  sb_puts(&s, g->amz_date);
  sb_putc(&s, '\n');
  sb_puts(&s, g->scope);
  sb_putc(&s, '\n');
  sb_puts(&s, creq_hash);
  return (g->sts = sb_take(&s)) ? S3SINK_OK : oom(err);
}

/* The signing key (an HMAC chain from "AWS4" + secret over the scope's parts), then the
 * signature of the string to sign. Key material is wiped before returning. */
static int signature(signing *g, s3sink_err *err) {
  const s3sink_sigv4_params *p = g->p;
  size_t secret_len = 4 + strlen(p->secret_key);
  char *secret = malloc(secret_len + 1);
  if (!secret) return oom(err);
  memcpy(secret, "AWS4", 4);
  memcpy(secret + 4, p->secret_key, secret_len - 4);
  unsigned char key[32], sig[32];
  bool ok = hmac(secret, secret_len, g->amz_date, 8, key) &&
            hmac(key, 32, p->region, strlen(p->region), key) &&
            hmac(key, 32, p->service, strlen(p->service), key) &&
            hmac(key, 32, "aws4_request", 12, key) && hmac(key, 32, g->sts, strlen(g->sts), sig);
  OPENSSL_cleanse(secret, secret_len);
  free(secret);
  OPENSSL_cleanse(key, sizeof key);
  if (!ok) return err_set(err, S3SINK_ENOMEM, "sigv4: HMAC-SHA256 failed");
  ascii_hex(sig, 32, g->signature);
  return S3SINK_OK;
}

/* Fills out: the Authorization header, or the presigned query; the intermediate texts
 * move over. */
static int results(signing *g, s3sink_sigv4_result *out, s3sink_err *err) {
  out->signature = strdup(g->signature);
  out->amz_date = strdup(g->amz_date);
  out->content_sha256 = strdup(g->payload);
  if (!out->signature || !out->amz_date || !out->content_sha256) return oom(err);
  sb s;
  sb_init(&s);
  if (g->presign) {
    sb_puts(&s, g->query);
    sb_puts(&s, g->query[0] ? "&X-Amz-Signature=" : "X-Amz-Signature=");
    sb_puts(&s, g->signature);
    if (!(out->query = sb_take(&s))) return oom(err);
  } else {
    sb_puts(&s, ALGORITHM " Credential=");
    sb_puts(&s, g->p->access_key);
    sb_putc(&s, '/');
    sb_puts(&s, g->scope);
    sb_puts(&s, ", SignedHeaders=");
    sb_puts(&s, g->signed_headers);
    sb_puts(&s, ", Signature=");
    sb_puts(&s, g->signature);
    if (!(out->authorization = sb_take(&s))) return oom(err);
  }
  out->canonical_request = g->canonical;
  out->string_to_sign = g->sts;
  g->canonical = g->sts = NULL;
  return S3SINK_OK;
}

static int sign(const s3sink_sigv4_request *req, const s3sink_sigv4_params *p, bool presign,
                s3sink_sigv4_result *out, s3sink_err *err) {
  if (!out) return err_set(err, S3SINK_EINVAL, "sigv4: result is required");
  memset(out, 0, sizeof *out);
  int rc = check_input(req, p, presign, err);
  if (rc) return rc;
  signing g = {.req = req, .p = p, .presign = presign};
  rc = prepare(&g, err);
  if (!rc) rc = canonical_headers(&g, err);
  if (!rc) rc = canonical_query(&g, err);
  if (!rc) rc = canonical_request(&g, err);
  if (!rc) rc = string_to_sign(&g, err);
  if (!rc) rc = signature(&g, err);
  if (!rc) rc = results(&g, out, err);
  if (rc) s3sink_sigv4_result_free(out);
  signing_free(&g);
  return rc;
}

int s3sink_sigv4_sign(const s3sink_sigv4_request *req, const s3sink_sigv4_params *p,
                      s3sink_sigv4_result *out, s3sink_err *err) {
  return sign(req, p, false, out, err);
}

int s3sink_sigv4_presign(const s3sink_sigv4_request *req, const s3sink_sigv4_params *p,
                         s3sink_sigv4_result *out, s3sink_err *err) {
  return sign(req, p, true, out, err);
}

void s3sink_sigv4_result_free(s3sink_sigv4_result *r) {
  if (!r) return;
  free(r->canonical_request);
  free(r->string_to_sign);
  free(r->signature);
  free(r->authorization);
  free(r->amz_date);
  free(r->content_sha256);
  free(r->query);
  memset(r, 0, sizeof *r);
}
