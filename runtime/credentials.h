/* credentials.h - internal: the credentials a sink signs with, from one source decided
 * when it opens: static keys (the options, the environment or a shared file), a
 * credentials provider (s3sink_credentials_fn), or none (anonymous, by request only).
 *
 * Provider credentials are cached until they are close to their expiry, then asked for
 * again by the thread about to sign. Threads: any; the cache has its own lock, never held
 * while the provider runs. Provider calls are serialized by a second lock, held during the
 * call only, which no other lock is taken under. */
#ifndef S3SINK_CREDENTIALS_H
#define S3SINK_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct credcache credcache;

/* Copies of the credentials to sign one request with; owned by whoever holds it (one per
 * S3 client), reused across requests. */
typedef struct credsnap {
  char *access_key, *secret_key, *session_token; /* session_token NULL if none */
} credsnap;

void credsnap_free(credsnap *s);

/* Static keys (copied and checked), or anonymous when access_key is NULL or empty.
 * `source` says where they came from, for messages. *out is the caller's
 * (credcache_free). */
int credcache_new_static(const char *access_key, const char *secret_key,
                         const char *session_token, const char *source, credcache **out,
                         s3sink_err *err);

/* Credentials of fn(ud), asked for when first needed. */
int credcache_new_provider(s3sink_credentials_fn fn, void *ud, credcache **out, s3sink_err *err);

/* The sink's credentials for a resolved configuration: its provider, its keys, the AWS
 * environment and shared files (profile: its `profile` option, or the environment's), or
 * anonymous when cfg->anonymous; else an error saying what was searched. */
int credcache_for_config(const s3sink_config *cfg, credcache **out, s3sink_err *err);

void credcache_free(credcache *c);

bool credcache_anonymous(const credcache *c);
bool credcache_has_provider(const credcache *c);

/* Fills *snap with credentials to sign with now: the cached ones, or the provider's when
 * the cached ones are missing, rejected or due (see credentials.c). A provider that fails
 * while the cached ones are still valid leaves them in use. */
int credcache_get(credcache *c, credsnap *snap, s3sink_err *err);

/* Asks the provider now if the cached credentials are missing, rejected or due; nothing
 * for static keys. An error only when no valid credentials are left. */
int credcache_refresh(credcache *c, s3sink_err *err);

/* The server refused access_key (invalid, expired): provider credentials are asked for
 * again before the next request; static ones stay (nothing else to use). */
void credcache_reject(credcache *c, const char *access_key);

/* Where the credentials come from, for messages and hosts. */
void credcache_source(credcache *c, char *buf, size_t cap);

#endif
