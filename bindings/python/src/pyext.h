/*
 * pyext.h - internal header of the CPython extension s3sink._s3sink, a binding of the
 * s3sink runtime (runtime/include/s3sink.h). What its files share:
 *
 *   module.c     module init and state, the exception classes, module functions
 *   options.c    Writer options and the vocabulary functions, from the runtime's tables
 *   json.c       the per-call byte arena; Python values -> compact JSON text
 *   convert.c    datetime/timedelta -> ns, column schemas, a row -> s3sink values
 *   writer.c     the Writer type (wraps `s3sink *`)
 *   formatter.c  the Formatter type (wraps `s3sink_formatter *`)
 *
 * Design rules:
 *   - multi-phase init, module state, heap types; no mutable C globals;
 *   - on_change converts every value by the column's declared type and keeps no Python
 *     reference after it returns;
 *   - every runtime call that may block on the network runs with the GIL released;
 *   - one function (set_sink_error) maps s3sink_err to the exception classes;
 *   - the extension includes only the runtime's public headers.
 *
 * Reference conventions in comments: "new" = the caller owns a new reference,
 * "borrowed" = it does not.
 */
#ifndef S3SINK_PYEXT_H
#define S3SINK_PYEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "s3sink.h"

/* ---------------------------------------------------------------------------------------
 * Module state (module.c)
 * ------------------------------------------------------------------------------------- */

typedef struct {
  PyTypeObject *WriterType;
  PyTypeObject *FormatterType;
  PyObject *SinkError, *ConfigError, *ScriptError, *UploadError;
  /* interned names */
  PyObject *s_key, *s_row, *s_time, *s_is_addition, *s_value, *s_tzinfo, *s_columns;
  /* stdlib types, imported at exec */
  PyObject *datetime_type, *timedelta_type;
  /* types of optional packages, looked up in sys.modules on first need (an object of
   * such a type cannot exist before its module is imported); NULL until found */
  PyObject *json_type, *pointer_type, *ndarray_type;
} modstate;

/* The state of the module that defined `type` (one of ours), or NULL with an exception. */
modstate *module_state_of(PyTypeObject *type);

/* A new exception instance for err (NULL with an exception set on failure). The one place
 * where s3sink codes become Python classes. */
PyObject *make_sink_error(modstate *st, const s3sink_err *err);

/* Raises the exception for err; always returns NULL. */
PyObject *set_sink_error(modstate *st, const s3sink_err *err);

/* Raises ConfigError with a formatted message; always returns NULL. */
PyObject *raise_config(modstate *st, const char *fmt, ...);

/* The types, created from their specs and added to the module; -1 with an exception. */
int add_writer_type(PyObject *module, modstate *st);
int add_formatter_type(PyObject *module, modstate *st);

/* ---------------------------------------------------------------------------------------
 * Options and the vocabulary (options.c)
 * ------------------------------------------------------------------------------------- */

/* Sets the options of cfg from a dict {name: value} by the runtime's option table; -1
 * with TypeError or ConfigError. Strings are borrowed from the dict's values (a path
 * object is replaced by its str there): keep the dict until s3sink_open. */
int config_from_options(modstate *st, PyObject *options, s3sink_config *cfg);

/* options(), column_types(), bundled(kind) */
PyObject *vocab_options(PyObject *module, PyObject *ignored);
PyObject *vocab_column_types(PyObject *module, PyObject *ignored);
PyObject *vocab_bundled(PyObject *module, PyObject *kind);

/* ---------------------------------------------------------------------------------------
 * A per-call byte arena: JSON texts and copied strings of one row. Starts on the stack.
 * (json.c)
 * ------------------------------------------------------------------------------------- */

typedef struct {
  char *data;
  size_t len, cap;
  bool heap;
  char local[2048];
} arena;

void ar_init(arena *a);
void ar_free(arena *a);
/* Makes room for `extra` more bytes; -1 with MemoryError. */
int ar_grow(arena *a, size_t extra);

static inline int ar_put(arena *a, const void *p, size_t n) {
  if (a->cap - a->len < n && ar_grow(a, n) < 0) return -1;
  memcpy(a->data + a->len, p, n);
  a->len += n;
  return 0;
}

static inline int ar_putc(arena *a, char c) {
  if (a->cap == a->len && ar_grow(a, 1) < 0) return -1;
  a->data[a->len++] = c;
  return 0;
}

#define AR_LIT(a, s) ar_put((a), (s), sizeof(s) - 1)

/* Appends the compact JSON text of v, with the engine's rules; -1 with an exception. */
int json_value(modstate *st, arena *a, PyObject *v);

/* ---------------------------------------------------------------------------------------
 * Python values -> numbers (convert.c)
 * ------------------------------------------------------------------------------------- */

/* Borrowed type object of `attr` in module `modname` if that module is already imported,
 * cached in *slot; NULL (no exception) if it is not imported or has no such type. */
PyObject *lazy_type(PyObject **slot, const char *modname, const char *attr);

/* Python int -> int64; raises OverflowError naming `what`. */
int long_to_i64(PyObject *v, int64_t *out, const char *what);

/* Nanoseconds of a datetime.timedelta (pandas.Timedelta: its exact `.value`). */
int timedelta_ns(modstate *st, PyObject *v, int64_t *ns);

/* Nanoseconds since the epoch of a datetime.datetime (pandas.Timestamp: its `.value`,
 * which is UTC for aware timestamps); *aware tells whether it has a tzinfo. */
int datetime_ns(modstate *st, PyObject *v, int64_t *ns, bool *aware);

/* ---------------------------------------------------------------------------------------
 * Columns and rows (convert.c)
 * ------------------------------------------------------------------------------------- */

/* Columns, their types from the runtime's table (s3sink_column_type_info). */
typedef struct {
  Py_ssize_t n;
  PyObject **names;     /* strong, interned str */
  s3sink_kind *kinds;   /* the kind of values the column's type passes; S3SINK_V_NULL for
                           "any": each value's own */
  s3sink_column *cols;  /* name: UTF-8 of names[i]; type: the table's (static) name */
} schema;

/* Parses a sequence of (name, type[, optional]). Raises ConfigError/TypeError. */
int schema_parse(modstate *st, PyObject *columns, schema *sc);
void schema_free(schema *sc);

#define MAX_STACK_COLUMNS 32

/* The values of one row, converted for the runtime. */
typedef struct {
  s3sink_value *vals;
  PyObject **objs;   /* strong references to the row's values, held during the call */
  size_t *offs;      /* arena offset of a value's text, or SIZE_MAX */
  arena ar;
  s3sink_value vstack[MAX_STACK_COLUMNS];
  PyObject *ostack[MAX_STACK_COLUMNS];
  size_t fstack[MAX_STACK_COLUMNS];
  Py_ssize_t n;
} rowbuf;

int rowbuf_init(rowbuf *rb, Py_ssize_t n);
/* Releases the row's values and empties it, keeping its buffers for the next row (a
 * writer converts every row into the same rowbuf: no allocation per row). */
void rowbuf_clear(rowbuf *rb);
void rowbuf_free(rowbuf *rb);

/* Converts `row` (a dict in column order) into rb->vals. Values stay referenced by
 * rb->objs until rowbuf_clear/rowbuf_free. */
int convert_row(modstate *st, const schema *sc, PyObject *row, rowbuf *rb);

/* The same from `values`, a list (or tuple) of the values by column position, as the
 * engine's callback sink passes them: no names involved. */
int convert_values(modstate *st, const schema *sc, PyObject *values, rowbuf *rb);

#endif /* S3SINK_PYEXT_H */
