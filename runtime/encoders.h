/* encoders.h - internal: native row encoders. A format script declares one in place of a
 * Lua row function (`row = fmt.csv_encoder{}`, `row = fmt.json_encoder{}`); the formatter
 * binds it to the columns at load and then writes each row in C, straight from the host's
 * values into the caller's buffer: no Lua call, no Lua string. The text is the one of
 * fmt.csv_row / fmt.json_row (the same cell writer, cells.c). */
#ifndef S3SINK_ENCODERS_H
#define S3SINK_ENCODERS_H

#include <stdbool.h>

#include "bytebuf.h"
#include "s3sink.h"

struct lua_State;

typedef struct encoder encoder;

/* Sets fmt.csv_encoder and fmt.json_encoder in the table at the top of the stack. */
void encoders_push_constructors(struct lua_State *L);

/* Whether the value at idx is an encoder declaration (made by those constructors). */
bool encoders_is_decl(struct lua_State *L, int idx);

/* Binds the declaration at idx to the columns (whose names the JSON keys take). */
int encoders_new(struct lua_State *L, int idx, const s3sink_column *columns, size_t ncolumns,
                 encoder **out, s3sink_err *err);

/* Appends one row (values already checked against the columns' kinds). False when out is
 * full (its cap, or out of memory): out is then as it was. */
bool encoders_row(const encoder *e, const s3sink_value *values, size_t n, int64_t time,
                  int diff, bytebuf *out);

void encoders_free(encoder *e);

#endif
