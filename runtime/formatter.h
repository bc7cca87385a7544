/* formatter.h - internal: a formatter that lives on a sink's Lua host. */
#ifndef S3SINK_FORMATTER_H
#define S3SINK_FORMATTER_H

#include "bytebuf.h"
#include "lua_host.h"
#include "s3sink.h"

/* Like s3sink_formatter_open, on an existing host (borrowed; must outlive the formatter). */
int formatter_open_on(luahost *host, const char *format, const s3sink_column *columns,
                      size_t ncolumns, s3sink_formatter **out, s3sink_err *err);

/* Whether rows are written by a native encoder (no Lua call per row). */
bool formatter_is_native(const s3sink_formatter *f);

/* Appends one row to out (the sink's buffer): S3SINK_OK; S3SINK_EAGAIN when out is full
 * (its cap, or out of memory), out then as it was; or an error (a bad value, the script
 * failed). A Lua row() runs exactly once per call, whatever the result. */
int formatter_append_row(s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                         int64_t time, int diff, bytebuf *out, s3sink_err *err);

/* Checks that a row has one value per column, each of its column's kind (what
 * formatter_append_row checks first). */
int formatter_check_values(const s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                           s3sink_err *err);

/* Writes a short description of a row's values into buf, for error messages. */
void formatter_describe_row(const s3sink_value *values, size_t n, char *buf, size_t cap);

#endif
