/* naming.h - internal: a naming policy (a Lua script) on a sink's Lua host. It names each
 * object, may say which keys under the prefix are its own (so that foreign objects such
 * as "_SUCCESS" or a sub-folder are ignored), and may give the key a listing can start
 * after when the sink opens. */
#ifndef S3SINK_NAMING_H
#define S3SINK_NAMING_H

#include <stdint.h>

#include "lua_host.h"
#include "partition.h"
#include "s3sink.h"

typedef struct naming naming;

/* What name() sees (the ctx table of README's "Naming policies"). */
typedef struct naming_ctx {
  const char *prefix, *extension, *writer_id, *last_key; /* writer_id, last_key: or NULL */
  uint64_t sequence, rows, bytes;
  int64_t flush_time_ms, first_time, last_time;
  bool has_event;                       /* the rows' event-time range (time_column) */
  int64_t min_event, max_event;
  const char *partition_path;           /* with partition_by: "col=value/...", and */
  size_t npartition;                    /* each column's value as path text */
  const char *const *partition_values;
  const partitioner *partitioner;       /* the columns' names */
} naming_ctx;

/* `name` is "default" or a script path. The host is borrowed and must outlive *out. */
int naming_open(luahost *host, const char *name, naming **out, s3sink_err *err);
void naming_free(naming *n);
const char *naming_label(const naming *n);

/* The key of an object: under ctx->prefix, after ctx->last_key. *key is malloc'ed,
 * owned by the caller. */
int naming_name(naming *n, const naming_ctx *ctx, char **key, s3sink_err *err);

/* Whether `key` (under prefix) is one of the policy's keys; every key is, for a policy
 * without owns(). */
int naming_owns(naming *n, const char *prefix, const char *key, bool *owns, s3sink_err *err);

/* The key a listing of the prefix may start after (*out malloc'ed, owned by the caller),
 * or *out NULL to list the whole prefix. */
int naming_start_after(naming *n, const char *prefix, const char *writer_id, int64_t now_ms,
                       char **out, s3sink_err *err);

#endif
