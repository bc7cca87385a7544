/* keytemplate.h - internal: the key_template option, e.g.
 * "{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}": parsed and checked once when the
 * sink opens (an error names the placeholder at fault and the fix), rendered for each
 * object. See docs/partitions.md for the placeholders and the rules that keep keys unique
 * and increasing in each partition. */
#ifndef S3SINK_KEYTEMPLATE_H
#define S3SINK_KEYTEMPLATE_H

#include <stdbool.h>
#include <stdint.h>

#include "partition.h"
#include "s3sink.h"

typedef struct keytemplate keytemplate;

/* The template used when partition_by is given without key_template or naming script:
 * "{prefix}{partition}/{stamp}-{seq}.{ext}", with "-{writer_id}" before ".{ext}" when
 * `writer_id`. Static. */
const char *keytemplate_default(bool writer_id);

/* Parses `text` for a sink with these partition_by column names (comma-separated, or
 * NULL), a time_column or not, a writer_id or not. *out is owned by the caller
 * (keytemplate_free). */
int keytemplate_parse(const char *text, const char *partition_by, bool time_column,
                      bool writer_id, keytemplate **out, s3sink_err *err);
void keytemplate_free(keytemplate *t);

/* The finest calendar field the template uses ({minute} ... {year}); NONE if none. */
part_unit keytemplate_unit(const keytemplate *t);

/* What one key is made of. */
typedef struct keytemplate_ctx {
  const char *prefix, *writer_id, *extension;
  const partkey *part;    /* the partition: its values, and its event time when timed */
  int64_t flush_ms;       /* {stamp}, and the calendar fields of a partition not timed */
  uint64_t sequence;      /* {seq} */
} keytemplate_ctx;

/* The key (*key malloc'ed, the caller's); fails only when out of memory or when the key
 * is longer than S3 allows. */
int keytemplate_render(const keytemplate *t, const keytemplate_ctx *c, char **key, s3sink_err *err);

#endif
