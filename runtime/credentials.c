/* credentials.c - the credentials a sink signs with (see credentials.h).
 *
 * Provider credentials are due for a refresh once less than a margin of their life is
 * left: half their life, at most 5 minutes (so that credentials of an hour are renewed 5
 * minutes ahead, and short test credentials halfway). A provider that fails while the
 * cached credentials are still valid leaves them in use; once they have expired (or the
 * server rejected them) its error is the request's, transient or not as it says. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "awsconfig.h"
#include "credentials.h"

#define MAX_REFRESH_MARGIN_S 300
#define PROVIDER "the credentials provider"

struct credcache {
  pthread_mutex_t mu;      /* guards the fields below */
  pthread_mutex_t call_mu; /* one provider call at a time */
  s3sink_credentials_fn fn;
  void *ud;
  bool anonymous;
  credsnap cur;            /* access_key NULL until the provider first answered */
  int64_t expires_at;      /* seconds since the epoch, 0: never */
  int64_t fetched_at;
  bool rejected;           /* by the server: ask the provider before using them again */
  char source[640];
};

static void free_secret(char *s) {
  if (!s) return;
  OPENSSL_cleanse(s, strlen(s));
  free(s);
}

void credsnap_free(credsnap *s) {
  free(s->access_key);
  free_secret(s->secret_key);
  free_secret(s->session_token);
  memset(s, 0, sizeof *s);
}

/* *dst = copies of src; false (dst unchanged) when out of memory. */
static bool snap_copy(credsnap *dst, const char *ak, const char *sk, const char *tok) {
  credsnap n = {strdup(ak), strdup(sk), tok && *tok ? strdup(tok) : NULL};
  if (!n.access_key || !n.secret_key || (tok && *tok && !n.session_token)) {
    credsnap_free(&n);
    return false;
  }
  credsnap_free(dst);
  *dst = n;
  return true;
}

/* Checks what will go into headers; `whose` ("" or "its ") starts the field names. */
static int check_keys(const char *ak, const char *sk, const char *tok, const char *whose,
                      s3sink_err *err) {
  if (!ak || !*ak || !sk || !*sk)
    return err_set(err, S3SINK_EINVAL, "%s%s is empty", whose,
                   !ak || !*ak ? "access_key" : "secret_key");
  for (const char *q = ak; *q; q++)
    if ((unsigned char)*q <= ' ' || *q == '/' || *q == 0x7f)
      return err_set(err, S3SINK_EINVAL, "%saccess_key holds blanks, '/' or control characters",
                     whose);
  for (const char *q = sk; *q; q++)
    if ((unsigned char)*q < ' ' || *q == 0x7f)
      return err_set(err, S3SINK_EINVAL, "%ssecret_key holds control characters", whose);
  for (const char *q = tok ? tok : ""; *q; q++)
    if ((unsigned char)*q < ' ' || *q == 0x7f)
      return err_set(err, S3SINK_EINVAL, "%ssession_token holds control characters", whose);
  return S3SINK_OK;
}

static credcache *cache_new(void) {
  credcache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->call_mu, NULL);
  return c;
}

int credcache_new_static(const char *access_key, const char *secret_key,
                         const char *session_token, const char *source, credcache **out,
                         s3sink_err *err) {
  *out = NULL;
  bool anonymous = !access_key || !*access_key;
  if (!anonymous) {
    if (!secret_key || !*secret_key)
      return err_set(err, S3SINK_EINVAL,
                     "access_key is set but secret_key is empty: set both, or neither");
    int rc = check_keys(access_key, secret_key, session_token, "", err);
    if (rc) return rc;
  }
  credcache *c = cache_new();
  if (!c || (!anonymous && !snap_copy(&c->cur, access_key, secret_key, session_token))) {
    credcache_free(c);
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  c->anonymous = anonymous;
  snprintf(c->source, sizeof c->source, "%s", source);
  *out = c;
  return S3SINK_OK;
}

int credcache_new_provider(s3sink_credentials_fn fn, void *ud, credcache **out, s3sink_err *err) {
  *out = cache_new();
  if (!*out) return err_set(err, S3SINK_ENOMEM, "out of memory");
  (*out)->fn = fn;
  (*out)->ud = ud;
  snprintf((*out)->source, sizeof (*out)->source, PROVIDER);
  return S3SINK_OK;
}

void credcache_free(credcache *c) {
  if (!c) return;
  credsnap_free(&c->cur);
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->call_mu);
  free(c);
}

bool credcache_anonymous(const credcache *c) { return c->anonymous; }

bool credcache_has_provider(const credcache *c) { return c->fn != NULL; }

static int64_t now_s(void) { return (int64_t)time(NULL); }

static int64_t margin(const credcache *c) {
  int64_t m = (c->expires_at - c->fetched_at) / 2;
  return m < 0 ? 0 : m > MAX_REFRESH_MARGIN_S ? MAX_REFRESH_MARGIN_S : m;
}

/* With c->mu held. */
static bool is_due(const credcache *c, int64_t now) {
  return !c->cur.access_key || c->rejected || (c->expires_at && now >= c->expires_at - margin(c));
}

static bool is_usable(const credcache *c, int64_t now) {
  return c->cur.access_key && !c->rejected && (!c->expires_at || now < c->expires_at);
}

static void unlock_mutex(void *mu) { pthread_mutex_unlock(mu); }

/* Asks the provider, with call_mu held, unless another thread just did. */
static int ask_locked(credcache *c, s3sink_err *err) {
  pthread_mutex_lock(&c->mu);
  bool due = is_due(c, now_s());
  pthread_mutex_unlock(&c->mu);
  if (!due) return S3SINK_OK;
  s3sink_credentials got;
  s3sink_err pe;
  memset(&got, 0, sizeof got);
  memset(&pe, 0, sizeof pe);
  int rc = c->fn(c->ud, &got, &pe);
  if (rc > 0 || (rc < 0 && !pe.msg[0])) {
    int code = rc < 0 ? rc : S3SINK_EINVAL;
    bool transient = pe.transient;
    err_set(&pe, code, "it failed (%s)", s3sink_strerror(code));
    pe.transient = transient;
    rc = code;
  } else if (rc == S3SINK_OK) {
    rc = check_keys(got.access_key, got.secret_key, got.session_token, "its ", &pe);
    if (rc == S3SINK_OK && got.expires_at < 0)
      rc = err_set(&pe, S3SINK_EINVAL, "its expires_at is %lld: give seconds since the Unix "
                   "epoch, or 0 for credentials that do not expire", (long long)got.expires_at);
  }
  int64_t now = now_s();
  pthread_mutex_lock(&c->mu);
  if (rc == S3SINK_OK) {
    if (snap_copy(&c->cur, got.access_key, got.secret_key, got.session_token)) {
      c->expires_at = got.expires_at;
      c->fetched_at = now;
      c->rejected = false;
      if (got.source && *got.source)
        snprintf(c->source, sizeof c->source, PROVIDER " (%.500s)", got.source);
    } else {
      rc = err_set(&pe, S3SINK_ENOMEM, "out of memory");
    }
  }
  if (rc != S3SINK_OK && is_usable(c, now)) rc = S3SINK_OK; /* still valid: keep them */
  if (rc != S3SINK_OK && err) {
    *err = pe;
    err_prefix(err, "cannot get credentials from %s: ", c->source);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* Asks the provider, one call at a time. */
static int ask_provider(credcache *c, s3sink_err *err) {
  volatile int rc = S3SINK_OK;
  pthread_mutex_lock(&c->call_mu);
  /* A provider may end the calling thread instead of returning: Python ends threads that
   * wait for its lock while the interpreter exits. The lock must not stay taken then. */
  pthread_cleanup_push(unlock_mutex, &c->call_mu);
  rc = ask_locked(c, err);
  pthread_cleanup_pop(1);
  return rc;
}

int credcache_refresh(credcache *c, s3sink_err *err) {
  if (!c->fn) return S3SINK_OK;
  pthread_mutex_lock(&c->mu);
  bool due = is_due(c, now_s());
  pthread_mutex_unlock(&c->mu);
  return due ? ask_provider(c, err) : S3SINK_OK;
}

int credcache_get(credcache *c, credsnap *snap, s3sink_err *err) {
  if (c->anonymous) return err_set(err, S3SINK_ESTATE, "anonymous requests have no credentials");
  int rc = credcache_refresh(c, err);
  if (rc) return rc;
  pthread_mutex_lock(&c->mu);
  if (!snap_copy(snap, c->cur.access_key, c->cur.secret_key, c->cur.session_token))
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void credcache_reject(credcache *c, const char *access_key) {
  if (!c->fn || !access_key) return;
  pthread_mutex_lock(&c->mu);
  if (c->cur.access_key && strcmp(c->cur.access_key, access_key) == 0) c->rejected = true;
  pthread_mutex_unlock(&c->mu);
}

void credcache_source(credcache *c, char *buf, size_t cap) {
  pthread_mutex_lock(&c->mu);
  snprintf(buf, cap, "%s", c->source);
  pthread_mutex_unlock(&c->mu);
}

int credcache_for_config(const s3sink_config *cfg, credcache **out, s3sink_err *err) {
  *out = NULL;
  bool keys = (cfg->access_key && *cfg->access_key) || (cfg->secret_key && *cfg->secret_key);
  if (cfg->credentials) {
    if (keys || cfg->anonymous || cfg->profile)
      return err_set(err, S3SINK_EINVAL,
                     "a credentials provider is given, and %s too: the provider is the one "
                     "source of credentials, drop the other",
                     keys ? "access_key/secret_key" : cfg->anonymous ? "anonymous" : "profile");
    return credcache_new_provider(cfg->credentials, cfg->credentials_ud, out, err);
  }
  if (cfg->anonymous) {
    if (keys || cfg->profile)
      return err_set(err, S3SINK_EINVAL,
                     "anonymous is set, and %s too: anonymous requests carry no credentials, "
                     "choose one",
                     keys ? "access_key/secret_key" : "profile");
    return credcache_new_static(NULL, NULL, NULL, "none: the requests are anonymous (anonymous = true)",
                                out, err);
  }
  if (keys) {
    if (cfg->profile)
      return err_set(err, S3SINK_EINVAL,
                     "access_key and profile are both given: use the keys or the profile");
    return credcache_new_static(cfg->access_key, cfg->secret_key, cfg->session_token,
                                "the access_key option", out, err);
  }
  awsconfig a;
  awsconfig_keys k;
  int rc = awsconfig_load(&a, cfg->profile, err);
  if (rc == S3SINK_OK) rc = awsconfig_credentials(&a, &k, err);
  if (rc == S3SINK_OK && k.access_key) {
    rc = credcache_new_static(k.access_key, k.secret_key, k.session_token, k.source, out, err);
    if (rc) err_prefix(err, "credentials from %s: ", k.source);
  } else if (rc == S3SINK_OK) {
    char searched[1024];
    awsconfig_describe_search(&a, searched, sizeof searched);
    rc = err_set(err, S3SINK_EINVAL,
                 "no credentials found: %s. Give access_key and secret_key, set "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile (AWS_PROFILE "
                 "or profile), give a credentials provider, or set anonymous = true to send "
                 "unsigned requests",
                 searched);
  }
  awsconfig_free(&a);
  return rc;
}
