/*
 * writer.c - the Writer type: wraps `s3sink *` as a Pathway ConnectorObserver-shaped
 * object whose on_change(key, row, time, is_addition) converts the row in C (convert.c)
 * and hands it to the runtime, which formats it (a native encoder or the Lua format
 * script) and buffers it. on_engine_change(key, values, time, diff) does the same for the
 * engine's own callback sink, which passes the values as a list in column order. Calls
 * that may wait on the network or for room run with the GIL released, holding the
 * writer's lock (writer_lock); a row that needs no wait takes only the sink's own lock.
 *
 * Credentials from a Python callable (`credentials=`, e.g. botocore's chain): the runtime
 * calls it before signing, from the thread that signs, which may be the sink's own
 * thread. That thread takes the GIL (py_credentials). It could deadlock only with a thread
 * that holds the GIL while it waits for the sink's thread, so no call here does: every
 * call that may upload, wait for room, or stop the sink's thread (open, flush, time_end,
 * close, write_held, free) runs with the GIL released; those kept with the GIL (try_write,
 * health, stats) take the sink's lock only, which the provider never runs under. The
 * alternative, a Python thread pushing credentials ahead of their expiry, would duplicate
 * botocore's refresh timing and still need the GIL. At interpreter exit Python ends
 * threads that wait for the GIL: the callable is then not called from threads Python does
 * not know, and the runtime survives a thread ended inside it.
 */
#include "pyext.h"

#include <pythread.h>

#include <limits.h>

typedef struct {
  PyObject_HEAD
  modstate *st;             /* the type keeps the module, hence the state, alive */
  s3sink *sink;             /* NULL before init and after close */
  bool busy;                /* a call holds the writer's lock (see writer_lock) */
  PyThread_type_lock lock;  /* held by the `busy` call: where the others sleep */
  PyThread_type_lock state; /* held briefly: to read `sink` for health properties, and to
                               free it; so health never waits for an upload */
  schema sc;
  rowbuf rb;                /* every row is converted here, unless rb_busy */
  bool rb_busy;             /* rb is in use by a call (read and set with the GIL held) */
  bool closed;
  bool spooled;             /* opened with a spool */
  int64_t last_time;        /* time of the last row written */
  bool have_rows;
  s3sink_stats final_stats; /* snapshot taken by close */
  char *final_key;          /* PyMem_Raw, last key at close */
  char final_source[700];   /* where the credentials came from, at close */
  bool final_anonymous;
  PyObject *desc;           /* str for repr: bucket, prefix, format (no credentials) */
  PyObject *credentials;    /* the credentials callable, or NULL */
  PyObject *on_event;       /* called with each event's dict (s3sink._events), or NULL */
  bool in_event;            /* on_event runs, on thread event_thread: it may read the */
  unsigned long event_thread; /* writer, not write, flush or close it (see in_on_event) */
  char *answer[4];          /* PyMem_Raw copies of its last answer (access, secret, token,
                               source); the runtime never calls it twice at once */
} WriterObject;

static void acquire(PyThread_type_lock lock) {
  if (!PyThread_acquire_lock(lock, NOWAIT_LOCK)) {
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
  }
}

/* ---------------------------------------------------------------------------------------
 * Credentials from a callable
 * ------------------------------------------------------------------------------------- */

static int credentials_fail(s3sink_err *err, int code, bool transient, const char *fmt, ...) {
  memset(err, 0, sizeof *err);
  err->code = code;
  err->transient = transient;
  va_list ap;
  va_start(ap, fmt);
  PyOS_vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return code;
}

static bool interpreter_exiting(void) {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

/* Copies the str `v` (or NULL for None when `optional`) into answer[i]; -1 with a message
 * in err for anything else. */
static int copy_answer(WriterObject *w, int i, const char *name, PyObject *v, bool optional,
                       s3sink_err *err) {
  PyMem_RawFree(w->answer[i]);
  w->answer[i] = NULL;
  if ((v == NULL || v == Py_None) && optional) return 0;
  if (v == NULL || !PyUnicode_Check(v))
    return credentials_fail(err, S3SINK_EINVAL, false,
                            "the credentials callable's %s is %s: it must be a str", name,
                            v ? Py_TYPE(v)->tp_name : "missing"), -1;
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(v, &n);
  if (!s || strlen(s) != (size_t)n) {
    PyErr_Clear();
    return credentials_fail(err, S3SINK_EINVAL, false,
                            "the credentials callable's %s is not valid text", name), -1;
  }
  if (!(w->answer[i] = PyMem_RawMalloc((size_t)n + 1)))
    return credentials_fail(err, S3SINK_ENOMEM, true, "out of memory"), -1;
  memcpy(w->answer[i], s, (size_t)n + 1);
  return 0;
}

/* Seconds since the epoch of None (0), a number or an object with timestamp() (an aware
 * datetime); -1 with a message in err otherwise. */
static int expiry_of(PyObject *v, int64_t *out, s3sink_err *err) {
  *out = 0;
  if (!v || v == Py_None) return 0;
  PyObject *ts = PyNumber_Check(v) ? Py_NewRef(v) : PyObject_CallMethod(v, "timestamp", NULL);
  double d = ts ? PyFloat_AsDouble(ts) : -1.0;
  Py_XDECREF(ts);
  if (PyErr_Occurred() || d < 0 || d > 9e15) {
    PyErr_Clear();
    return credentials_fail(err, S3SINK_EINVAL, false,
                            "the credentials callable's expires_at is a %.100s: give seconds "
                            "since the Unix epoch, a datetime, or None", Py_TYPE(v)->tp_name), -1;
  }
  *out = (int64_t)d;
  return 0;
}

/* Calls the callable (GIL held) and reads its answer: a dict {access_key, secret_key,
 * session_token, expires_at, source} or a tuple (access_key, secret_key[, session_token])
 * such as botocore's frozen credentials. */
static int call_credentials(WriterObject *w, s3sink_credentials *out, s3sink_err *err) {
  PyObject *r = PyObject_CallNoArgs(w->credentials);
  if (!r) {
    /* ConfigError means "fix the settings"; anything else may pass (a metadata service
     * that did not answer, a process that failed once) */
    bool config = PyErr_ExceptionMatches(w->st->ConfigError);
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    PyObject *text = exc ? PyObject_Str(exc) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    PyErr_Clear();
    credentials_fail(err, config ? S3SINK_EINVAL : S3SINK_EHTTP, !config, "%s%s%s",
                     config || !exc ? "" : Py_TYPE(exc)->tp_name, config || !exc ? "" : ": ",
                     msg ? msg : "(no message)");
    Py_XDECREF(text);
    Py_XDECREF(exc);
    return err->code;
  }
  PyObject *fields[5] = {NULL, NULL, NULL, NULL, NULL}; /* borrowed */
  int rc = 0;
  if (PyDict_Check(r)) {
    static const char *const names[] = {"access_key", "secret_key", "session_token", "expires_at", "source"};
    for (int i = 0; i < 5; i++) fields[i] = PyDict_GetItemString(r, names[i]);
  } else if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) >= 2 && PyTuple_GET_SIZE(r) <= 3) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(r); i++) fields[i] = PyTuple_GET_ITEM(r, i);
  } else {
    rc = credentials_fail(err, S3SINK_EINVAL, false,
                          "the credentials callable returned a %.100s: return a dict "
                          "{access_key, secret_key, session_token, expires_at, source} or a "
                          "tuple (access_key, secret_key[, session_token])", Py_TYPE(r)->tp_name);
  }
  int64_t expires = 0;
  if (rc == 0 &&
      (copy_answer(w, 0, "access_key", fields[0], false, err) < 0 ||
       copy_answer(w, 1, "secret_key", fields[1], false, err) < 0 ||
       copy_answer(w, 2, "session_token", fields[2], true, err) < 0 ||
       expiry_of(fields[3], &expires, err) < 0 ||
       copy_answer(w, 3, "source", fields[4], true, err) < 0))
    rc = err->code;
  Py_DECREF(r);
  if (rc == 0) *out = (s3sink_credentials){w->answer[0], w->answer[1], w->answer[2], expires, w->answer[3]};
  return rc;
}

/* The runtime's provider (see the top of the file for the threads and the GIL). */
static int py_credentials(void *ud, s3sink_credentials *out, s3sink_err *err) {
  WriterObject *w = ud;
  if (interpreter_exiting() && !PyGILState_GetThisThreadState())
    return credentials_fail(err, S3SINK_ESTATE, true,
                            "the Python interpreter is exiting: the credentials callable is "
                            "not called from the sink's thread any more");
  PyGILState_STATE g = PyGILState_Ensure();
  int rc = call_credentials(w, out, err);
  PyGILState_Release(g);
  return rc;
}

/* ---------------------------------------------------------------------------------------
 * Events and counters
 * ------------------------------------------------------------------------------------- */

/* The counters as a dict, by the runtime's table of them. */
static PyObject *stats_dict(const s3sink_stats *s) {
  PyObject *d = PyDict_New();
  const s3sink_stat_field *f;
  for (size_t i = 0; d && (f = s3sink_stat_field_info(i)); i++) {
    const char *at = (const char *)s + f->offset;
    PyObject *v;
    if (f->is_signed) {
      int64_t x;
      memcpy(&x, at, sizeof x);
      v = PyLong_FromLongLong((long long)x);
    } else {
      uint64_t x;
      memcpy(&x, at, sizeof x);
      v = PyLong_FromUnsignedLongLong((unsigned long long)x);
    }
    if (!v || PyDict_SetItemString(d, f->name, v) < 0) Py_CLEAR(d);
    Py_XDECREF(v);
  }
  return d;
}

static bool read_stats(WriterObject *self, s3sink_stats *s);

static PyObject *optional_text(const char *s) {
  return s ? PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace") : Py_NewRef(Py_None);
}

/* The event as a dict: its fields, and the writer's counters after it. */
static PyObject *event_dict(WriterObject *w, const s3sink_event *ev) {
  s3sink_stats st;
  memset(&st, 0, sizeof st);
  read_stats(w, &st);
  PyObject *key = optional_text(ev->key), *message = optional_text(ev->message),
           *code = ev->message ? optional_text(ev->s3_code ? ev->s3_code : s3sink_strerror(ev->code))
                               : Py_NewRef(Py_None),
           *stats = stats_dict(&st), *d = NULL;
  if (key && message && code && stats)
    d = Py_BuildValue("{sssOsKsKsLsisLsOsOsO}", "kind", s3sink_event_kind_name(ev->kind),
                      "key", key, "rows", (unsigned long long)ev->rows, "bytes",
                      (unsigned long long)ev->bytes, "elapsed_ms", (long long)ev->elapsed_ms,
                      "attempts", ev->attempts, "retry_in_ms", (long long)ev->retry_in_ms,
                      "code", code, "message", message, "stats", stats);
  Py_XDECREF(key);
  Py_XDECREF(message);
  Py_XDECREF(code);
  Py_XDECREF(stats);
  return d;
}

/* The runtime's event callback: on the sink's thread, or the host's inside a call that
 * released the GIL; either way it takes the GIL, under the rule of py_credentials. An
 * exception of the callable is reported as unraisable (s3sink._events logs its own). */
static void py_event(void *ud, const s3sink_event *ev) {
  WriterObject *w = ud;
  if (interpreter_exiting() && !PyGILState_GetThisThreadState()) return;
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *d = event_dict(w, ev);
  bool nested = w->in_event;
  unsigned long thread = w->event_thread;
  w->in_event = true;
  w->event_thread = PyThread_get_thread_ident();
  PyObject *r = d ? PyObject_CallOneArg(w->on_event, d) : NULL;
  w->in_event = nested;
  w->event_thread = thread;
  if (!r) PyErr_WriteUnraisable(w->on_event);
  Py_XDECREF(r);
  Py_XDECREF(d);
  PyGILState_Release(g);
}

/* Whether this call comes from on_event, which runs inside the sink's calls (or on its
 * thread, which close waits for): a write, flush or close there would wait for itself.
 * Raises RuntimeError if so. */
static bool in_on_event(WriterObject *self) {
  if (!self->in_event || self->event_thread != PyThread_get_thread_ident()) return false;
  PyErr_SetString(PyExc_RuntimeError,
                  "on_event may read the writer (stats, last_key, last_error, failure), not "
                  "write, flush or close it: it runs inside those calls");
  return true;
}

/* Takes the callable option `name` out of options into *slot (None: not given). Returns
 * 1 if one was given, 0 if not, -1 with an exception. */
static int take_callable(PyObject *options, const char *name, PyObject **slot) {
  PyObject *v = PyDict_GetItemString(options, name); /* borrowed */
  if (!v) return 0;
  if (v != Py_None && !PyCallable_Check(v)) {
    PyErr_Format(PyExc_TypeError, "%s must be a callable or None, not %.100s", name,
                 Py_TYPE(v)->tp_name);
    return -1;
  }
  int given = v != Py_None;
  if (given) Py_XSETREF(*slot, Py_NewRef(v));
  return PyDict_DelItemString(options, name) < 0 ? -1 : given;
}

/* The writer's lock keeps the calls that may release the GIL inside the sink (a write
 * that waits for room, flush, close) apart. It is `busy`, set and cleared with the GIL
 * held, so a row written with the GIL held and `busy` clear needs no lock of its own
 * (only the sink's). The owner also holds `lock`, on which the others sleep without the
 * GIL. Called with the GIL; may release it while waiting. */
static void writer_lock(WriterObject *self) {
  while (self->busy) {
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
  }
  self->busy = true;
  acquire(self->lock); /* at once, unless a waiter is passing through it */
}

static void writer_unlock(WriterObject *self) {
  self->busy = false;
  PyThread_release_lock(self->lock);
}

static PyObject *Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  (void)args;
  (void)kwds;
  WriterObject *w = (WriterObject *)type->tp_alloc(type, 0);
  if (!w) return NULL;
  w->st = module_state_of(type);
  if (!w->st) {
    Py_DECREF(w);
    return NULL;
  }
  w->lock = PyThread_allocate_lock();
  w->state = PyThread_allocate_lock();
  if (!w->lock || !w->state) {
    Py_DECREF(w);
    return PyErr_NoMemory();
  }
  return (PyObject *)w;
}

static int Writer_init(WriterObject *self, PyObject *args, PyObject *kwds) {
  modstate *st = self->st;
  if (self->sink || self->closed) {
    PyErr_SetString(st->SinkError, "Writer.__init__ called twice");
    return -1;
  }
  if (PyTuple_GET_SIZE(args)) {
    PyErr_SetString(PyExc_TypeError, "Writer() takes keyword arguments only");
    return -1;
  }
  /* a copy: it keeps the option strings alive until open, whatever the caller does */
  PyObject *options = kwds ? PyDict_Copy(kwds) : PyDict_New();
  if (!options) return -1;
  PyObject *columns = PyDict_GetItemWithError(options, st->s_columns); /* borrowed */
  if (!columns) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_TypeError, "Writer() missing required keyword argument 'columns'");
    Py_DECREF(options);
    return -1;
  }
  Py_INCREF(columns);
  s3sink_config cfg;
  memset(&cfg, 0, sizeof cfg);
  schema sc;
  PyObject *desc = NULL;
  int rc = -1;
  int given = take_callable(options, "credentials", &self->credentials);
  if (given < 0) goto done;
  if (given) {
    cfg.credentials = py_credentials;
    cfg.credentials_ud = self;
  }
  if ((given = take_callable(options, "on_event", &self->on_event)) < 0) goto done;
  if (given) {
    cfg.on_event = py_event;
    cfg.on_event_ud = self;
  }
  if (PyDict_DelItem(options, st->s_columns) < 0 || config_from_options(st, options, &cfg) < 0 ||
      schema_parse(st, columns, &sc) < 0)
    goto done;
  desc = PyUnicode_FromFormat("bucket=%s prefix=%s%s%s", cfg.bucket ? cfg.bucket : "None",
                              cfg.prefix ? cfg.prefix : "", cfg.format ? " format=" : "",
                              cfg.format ? cfg.format : "");
  if (!desc || rowbuf_init(&self->rb, sc.n) < 0) {
    Py_CLEAR(desc);
    schema_free(&sc);
    goto done;
  }
  cfg.columns = sc.cols;
  cfg.ncolumns = (size_t)sc.n;
  s3sink *sink = NULL;
  s3sink_err err;
  memset(&err, 0, sizeof err);
  Py_BEGIN_ALLOW_THREADS
  rc = s3sink_open(&cfg, &sink, &err);
  Py_END_ALLOW_THREADS
  if (rc != S3SINK_OK) {
    Py_CLEAR(desc);
    rowbuf_free(&self->rb);
    schema_free(&sc);
    set_sink_error(st, &err);
    rc = -1;
    goto done;
  }
  self->sink = sink;
  self->spooled = cfg.spool_dir != NULL;
  self->sc = sc;
  Py_XSETREF(self->desc, desc);
done:
  Py_DECREF(columns);
  Py_DECREF(options);
  return rc;
}

static PyObject *closed_error(WriterObject *self) {
  PyErr_SetString(self->st->SinkError, self->closed ? "the writer is closed" : "the writer is not open");
  return NULL;
}

/* Parses (key, row, time, is_addition), positional or keyword. */
static int parse_change_args(WriterObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames, PyObject *argv[4]) {
  modstate *st = self->st;
  PyObject *names[4] = {st->s_key, st->s_row, st->s_time, st->s_is_addition};
  argv[0] = argv[1] = argv[2] = argv[3] = NULL;
  if (nargs > 4) {
    PyErr_Format(PyExc_TypeError, "on_change() takes 4 arguments (%zd given)", nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) argv[i] = args[i];
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t j = 0; j < nkw; j++) {
    PyObject *kw = PyTuple_GET_ITEM(kwnames, j);
    int idx = -1;
    for (int k = 0; k < 4 && idx < 0; k++)
      if (kw == names[k]) idx = k;
    for (int k = 0; k < 4 && idx < 0; k++)
      if (PyUnicode_Compare(kw, names[k]) == 0) idx = k;
    if (idx < 0) {
      PyErr_Format(PyExc_TypeError, "on_change() got an unexpected keyword argument %R", kw);
      return -1;
    }
    if (argv[idx]) {
      PyErr_Format(PyExc_TypeError, "on_change() got multiple values for argument %R", kw);
      return -1;
    }
    argv[idx] = args[nargs + j];
  }
  for (int k = 0; k < 4; k++)
    if (!argv[k]) {
      PyErr_Format(PyExc_TypeError, "on_change() missing required argument %R", names[k]);
      return -1;
    }
  return 0;
}

PyDoc_STRVAR(Writer_on_change_doc,
"on_change(key, row, time, is_addition)\n--\n\n"
"Buffers one change: ``row`` is a dict of the column values (in column order), ``time``\n"
"the engine time, ``is_addition`` False for a retraction. ``key`` is ignored.");

/* Converts one row (`row`, a dict, or else `values`, a list by column position) and
 * writes it. The conversion uses the writer's rowbuf, so a row allocates nothing; a call
 * that finds it in use (another thread, or a conversion that ran Python code which
 * re-entered) takes one of its own. One lock per row, the sink's: the writer's lock is
 * taken only if another call holds it, or to wait for room without the GIL. */
static PyObject *put_row(WriterObject *self, PyObject *row, PyObject *values, int64_t time, bool add) {
  if (!self->sink) return closed_error(self);
  if (in_on_event(self)) return NULL;
  rowbuf local, *rb = &self->rb;
  bool own = !self->rb_busy;
  if (own) self->rb_busy = true;
  else if (rowbuf_init(rb = &local, self->sc.n) < 0) return NULL;
  bool raised = (row ? convert_row(self->st, &self->sc, row, rb)
                     : convert_values(self->st, &self->sc, values, rb)) < 0;
  s3sink_err err;
  err.code = 0;
  int rc = S3SINK_OK;
  bool closed = false;
  if (!raised) {
    bool locked = self->busy; /* another call is inside the sink: wait for it */
    if (locked) writer_lock(self);
    if (!self->sink) { /* closed by another thread meanwhile */
      closed = true;
    } else {
      rc = s3sink_try_write(self->sink, rb->vals, (size_t)self->sc.n, time, add ? 1 : -1, &err);
      if (rc == S3SINK_EAGAIN) { /* over budget: wait for uploads (backpressure), without the GIL */
        if (!locked) writer_lock(self); /* not busy: taken before the GIL is let go */
        locked = true;
        Py_BEGIN_ALLOW_THREADS
        rc = s3sink_write_held(self->sink, &err);
        Py_END_ALLOW_THREADS
      }
      if (rc == S3SINK_OK) {
        self->last_time = time;
        self->have_rows = true;
      }
    }
    if (locked) writer_unlock(self);
  }
  if (own) {
    rowbuf_clear(rb);
    self->rb_busy = false;
  } else {
    rowbuf_free(rb);
  }
  if (raised) return NULL;
  if (closed) return closed_error(self);
  if (rc != S3SINK_OK) return set_sink_error(self->st, &err);
  Py_RETURN_NONE;
}

static PyObject *Writer_on_change(WriterObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
  PyObject *argv[4];
  if (parse_change_args(self, args, nargs, kwnames, argv) < 0) return NULL;
  if (!self->sink) return closed_error(self);
  int64_t time;
  if (!PyLong_Check(argv[2])) {
    PyErr_Format(PyExc_TypeError, "time must be an int, not %.100s", Py_TYPE(argv[2])->tp_name);
    return NULL;
  }
  if (long_to_i64(argv[2], &time, "time") < 0) return NULL;
  int add = PyObject_IsTrue(argv[3]);
  if (add < 0) return NULL;
  return put_row(self, argv[1], NULL, time, add != 0);
}

PyDoc_STRVAR(Writer_on_engine_change_doc,
"on_engine_change(key, values, time, diff)\n--\n\n"
"Buffers one change as Pathway's engine passes it to a callback sink: ``values`` is the\n"
"list of the column values in column order, ``diff`` +1 for an insertion, -1 for a\n"
"retraction. ``key`` is ignored.");

static PyObject *Writer_on_engine_change(WriterObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 4) {
    PyErr_Format(PyExc_TypeError, "on_engine_change() takes 4 arguments (%zd given)", nargs);
    return NULL;
  }
  int64_t time, diff;
  if (!PyLong_Check(args[2]) || !PyLong_Check(args[3])) {
    PyErr_Format(PyExc_TypeError, "time and diff must be int, not %.100s and %.100s",
                 Py_TYPE(args[2])->tp_name, Py_TYPE(args[3])->tp_name);
    return NULL;
  }
  if (long_to_i64(args[2], &time, "time") < 0 || long_to_i64(args[3], &diff, "diff") < 0) return NULL;
  /* an insertion is diff >= 1, as pw.io.python.write decides is_addition */
  return put_row(self, NULL, args[1], time, diff >= 1);
}

/* Ends the minibatch of *time_end (if given), then applies the flush policy, with the
 * GIL released and the writer's lock held. Returns s3sink_flush's result, or
 * FLUSH_CLOSED if the writer is (or got) closed; *stopped tells whether uploads have
 * stopped on an error (as opposed to a failed attempt that is retried). */
#define FLUSH_CLOSED (INT_MIN)
#define FLUSH_RAISED (INT_MIN + 1)
static int locked_flush(WriterObject *self, const int64_t *time_end, bool forced,
                        s3sink_err *err, bool *stopped) {
  memset(err, 0, sizeof *err);
  *stopped = false;
  if (!self->sink) return FLUSH_CLOSED;
  if (in_on_event(self)) return FLUSH_RAISED;
  int rc = FLUSH_CLOSED;
  writer_lock(self);
  s3sink *s = self->sink;
  if (s) {
    Py_BEGIN_ALLOW_THREADS
    rc = time_end ? s3sink_time_end(s, *time_end, err) : S3SINK_OK;
    if (rc == S3SINK_OK) rc = s3sink_flush(s, forced, err);
    *stopped = rc < 0 && s3sink_failure(s, NULL) != S3SINK_OK;
    Py_END_ALLOW_THREADS
  }
  writer_unlock(self);
  return rc;
}

/* An upload attempt failed but its rows are kept and it is retried: not an error for
 * the caller of on_time_end. */
static bool retried(int rc, bool stopped) {
  return !stopped && (rc == S3SINK_EHTTP || rc == S3SINK_ES3);
}

PyDoc_STRVAR(Writer_on_time_end_doc,
"on_time_end(time)\n--\n\n"
"Closes the minibatch of ``time`` (with a spool, once it is on disk) and applies the\n"
"flush policy: uploads the complete minibatches as one object if the write interval has\n"
"passed since the last upload. Returns True if an object was uploaded (or handed to the\n"
"sink's thread). A failed attempt that is retried does not raise (its error is in\n"
"``last_error``); once uploads have stopped on an error, raises it.");

static PyObject *Writer_on_time_end(WriterObject *self, PyObject *arg) {
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "time must be an int, not %.100s", Py_TYPE(arg)->tp_name);
    return NULL;
  }
  int64_t time;
  if (long_to_i64(arg, &time, "time") < 0) return NULL;
  s3sink_err err;
  bool stopped;
  int rc = locked_flush(self, &time, false, &err, &stopped);
  if (rc == FLUSH_RAISED) return NULL;
  if (rc == FLUSH_CLOSED) return closed_error(self);
  if (retried(rc, stopped)) Py_RETURN_FALSE;
  if (rc < 0) return set_sink_error(self->st, &err);
  return PyBool_FromLong(rc > 0);
}

PyDoc_STRVAR(Writer_flush_doc,
"flush(forced=False)\n--\n\n"
"Applies the flush policy now; with ``forced``, uploads everything kept whatever the\n"
"interval, retrying transient failures within the retry budget (and trying again after\n"
"uploads had stopped on an error). Returns True if an object was uploaded; raises\n"
"UploadError if the upload failed (the rows are kept).");

static PyObject *Writer_flush(WriterObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  int forced = 0;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs + nkw > 1) {
    PyErr_SetString(PyExc_TypeError, "flush() takes at most 1 argument");
    return NULL;
  }
  if (nkw && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "forced") != 0) {
    PyErr_Format(PyExc_TypeError, "flush() got an unexpected keyword argument %R",
                 PyTuple_GET_ITEM(kwnames, 0));
    return NULL;
  }
  if (nargs + nkw == 1 && (forced = PyObject_IsTrue(args[0])) < 0) return NULL;
  s3sink_err err;
  bool stopped;
  int rc = locked_flush(self, NULL, forced, &err, &stopped);
  if (rc == FLUSH_RAISED) return NULL;
  if (rc == FLUSH_CLOSED) return closed_error(self);
  if (rc < 0) return set_sink_error(self->st, &err);
  return PyBool_FromLong(rc > 0);
}

/* Ends the sink with s3sink_finish's flags and frees it. Returns 0, or -1 with the error
 * in *err and the sink still open. Called with the GIL released and the lock held; the
 * final stats and key replace the sink under `state`, so health readers see one or the
 * other. */
static int close_locked(WriterObject *self, unsigned flags, s3sink_err *err) {
  s3sink *s = self->sink;
  if (s3sink_finish(s, flags, err) != S3SINK_OK) return -1;
  char key[1100];
  s3sink_last_key(s, key, sizeof key);
  size_t n = strlen(key);
  char *copy = PyMem_RawMalloc(n + 1);
  if (copy) memcpy(copy, key, n + 1);
  PyThread_acquire_lock(self->state, WAIT_LOCK);
  s3sink_get_stats(s, &self->final_stats);
  self->final_anonymous = s3sink_credentials_source(s, self->final_source, sizeof self->final_source);
  PyMem_RawFree(self->final_key);
  self->final_key = copy;
  self->sink = NULL;
  self->closed = true;
  PyThread_release_lock(self->state);
  s3sink_free(s);
  return 0;
}

static PyObject *do_close(WriterObject *self, unsigned flags) {
  if (!self->sink) Py_RETURN_NONE; /* closed already (or never opened): nothing to do */
  if (in_on_event(self)) return NULL;
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = 1;
  writer_lock(self);
  if (self->sink) {
    Py_BEGIN_ALLOW_THREADS
    rc = close_locked(self, flags, &err);
    Py_END_ALLOW_THREADS
  }
  writer_unlock(self);
  if (rc == 1) Py_RETURN_NONE; /* another thread closed it */
  if (rc < 0) return set_sink_error(self->st, &err);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(Writer_close_doc,
"close(*, drop_unfinished=False, leave_spooled=False)\n--\n\n"
"Uploads everything still buffered (an unfinished minibatch too), stops the sink's thread\n"
"and releases the sink. Raises UploadError if the final upload fails; the rows are then\n"
"kept and close() may be called again. Closing a closed writer does nothing.\n\n"
"For a host that stops mid-stream: ``drop_unfinished`` drops the rows written since the\n"
"last on_time_end (the host sends them again), and ``leave_spooled`` (with a spool)\n"
"uploads nothing: every kept row stays in the spool for the next writer on it.");

static PyObject *Writer_close(WriterObject *self, PyObject *args, PyObject *kwds) {
  char *kwlist[] = {"drop_unfinished", "leave_spooled", NULL};
  int drop = 0, leave = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pp:close", kwlist, &drop, &leave)) return NULL;
  return do_close(self, (drop ? S3SINK_DROP_UNFINISHED : 0u) | (leave ? S3SINK_LEAVE_SPOOLED : 0u));
}

/* Frees the sink without uploading; `state` keeps health readers off it meanwhile. */
static void discard_sink(WriterObject *self) {
  acquire(self->state);
  s3sink *sink = self->sink;
  if (sink) {
    s3sink_get_stats(sink, &self->final_stats);
    self->final_anonymous = s3sink_credentials_source(sink, self->final_source, sizeof self->final_source);
    self->closed = true;
  }
  self->sink = NULL;
  PyThread_release_lock(self->state);
  if (!sink) return;
  Py_BEGIN_ALLOW_THREADS
  s3sink_free(sink);
  Py_END_ALLOW_THREADS
}

PyDoc_STRVAR(Writer_discard_doc,
"discard()\n--\n\n"
"Releases the sink without uploading: rows in memory are lost, complete minibatches in\n"
"a spool stay there for the next writer on it.");

static PyObject *Writer_discard(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  if (in_on_event(self)) return NULL;
  writer_lock(self);
  discard_sink(self);
  writer_unlock(self);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(Writer_interrupt_doc,
"interrupt()\n--\n\n"
"Makes an on_change that waits for room (backpressure) raise at once, its row not\n"
"accepted, and every later one too: for a host shutting down while its thread waits.");

static PyObject *Writer_interrupt(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  acquire(self->state);
  if (self->sink) s3sink_interrupt(self->sink);
  PyThread_release_lock(self->state);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(Writer_on_end_doc,
"on_end()\n--\n\n"
"End of the stream: the same as close().");

static PyObject *Writer_on_end(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  return do_close(self, 0);
}

static PyObject *Writer_enter(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  return Py_NewRef(self);
}

static PyObject *Writer_exit(WriterObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return do_close(self, 0);
}

/* Health: the sink's counters, or those taken at close; never waits for an upload. */
static bool read_stats(WriterObject *self, s3sink_stats *s) {
  acquire(self->state);
  bool known = self->sink != NULL || self->closed;
  if (self->sink) s3sink_get_stats(self->sink, s);
  else *s = self->final_stats;
  PyThread_release_lock(self->state);
  return known;
}

static PyObject *Writer_get_stats(WriterObject *self, void *Py_UNUSED(closure)) {
  s3sink_stats s;
  if (!read_stats(self, &s)) return closed_error(self);
  return stats_dict(&s);
}

static PyObject *Writer_get_failed_uploads(WriterObject *self, void *Py_UNUSED(closure)) {
  s3sink_stats s;
  memset(&s, 0, sizeof s);
  read_stats(self, &s);
  return PyLong_FromUnsignedLongLong((unsigned long long)s.failed_uploads);
}

static PyObject *Writer_get_last_key(WriterObject *self, void *Py_UNUSED(closure)) {
  char key[1100];
  key[0] = 0;
  acquire(self->state);
  if (self->sink) s3sink_last_key(self->sink, key, sizeof key);
  else if (self->final_key) PyOS_snprintf(key, sizeof key, "%s", self->final_key);
  PyThread_release_lock(self->state);
  if (!key[0]) Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(key, (Py_ssize_t)strlen(key), "replace");
}

/* An error the sink reports (fn: s3sink_last_error or s3sink_failure), or None. */
static PyObject *sink_error_property(WriterObject *self, int (*fn)(s3sink *, s3sink_err *)) {
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = S3SINK_OK;
  acquire(self->state);
  if (self->sink) rc = fn(self->sink, &err);
  PyThread_release_lock(self->state);
  if (rc == S3SINK_OK) Py_RETURN_NONE;
  return make_sink_error(self->st, &err);
}

static PyObject *Writer_get_last_error(WriterObject *self, void *Py_UNUSED(closure)) {
  return sink_error_property(self, s3sink_last_error);
}

static PyObject *Writer_get_failure(WriterObject *self, void *Py_UNUSED(closure)) {
  return sink_error_property(self, s3sink_failure);
}

/* Where the credentials come from and whether requests are anonymous. */
static bool read_credentials_source(WriterObject *self, char *buf, size_t cap, bool *anonymous) {
  acquire(self->state);
  bool known = self->sink != NULL || self->closed;
  if (self->sink) {
    *anonymous = s3sink_credentials_source(self->sink, buf, cap);
  } else {
    *anonymous = self->final_anonymous;
    PyOS_snprintf(buf, cap, "%s", self->final_source);
  }
  PyThread_release_lock(self->state);
  return known;
}

static PyObject *Writer_get_credentials_source(WriterObject *self, void *Py_UNUSED(closure)) {
  char buf[700];
  bool anonymous;
  if (!read_credentials_source(self, buf, sizeof buf, &anonymous)) return closed_error(self);
  return PyUnicode_DecodeUTF8(buf, (Py_ssize_t)strlen(buf), "replace");
}

static PyObject *Writer_get_anonymous(WriterObject *self, void *Py_UNUSED(closure)) {
  char buf[700];
  bool anonymous;
  if (!read_credentials_source(self, buf, sizeof buf, &anonymous)) return closed_error(self);
  return PyBool_FromLong(anonymous);
}

static PyObject *Writer_get_closed(WriterObject *self, void *Py_UNUSED(closure)) {
  return PyBool_FromLong(self->sink == NULL);
}

static PyObject *Writer_get_columns(WriterObject *self, void *Py_UNUSED(closure)) {
  PyObject *list = PyList_New(self->sc.n);
  if (!list) return NULL;
  for (Py_ssize_t i = 0; i < self->sc.n; i++) {
    PyObject *t = Py_BuildValue("(OsO)", self->sc.names[i], self->sc.cols[i].type,
                                self->sc.cols[i].optional ? Py_True : Py_False);
    if (!t) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, t);
  }
  return list;
}

static PyObject *Writer_repr(WriterObject *self) {
  const char *state = self->sink ? "open" : self->closed ? "closed" : "not open";
  if (self->desc) return PyUnicode_FromFormat("<%s %U (%s)>", Py_TYPE(self)->tp_name, self->desc, state);
  return PyUnicode_FromFormat("<%s (%s)>", Py_TYPE(self)->tp_name, state);
}

/* A writer nobody closed: with a spool its rows stay there for the next writer (no
 * network); else it uploads them, unless uploads had stopped on an error already. Rows
 * that cannot be uploaded are dropped with a warning. */
static void Writer_finalize(WriterObject *self) {
  if (!self->sink) return;
#if PY_VERSION_HEX >= 0x030C0000
  PyObject *saved = PyErr_GetRaisedException();
#else
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
#endif
  s3sink_err failure; /* what stopped uploads, or else the last failed attempt */
  bool stopped = s3sink_failure(self->sink, &failure) != S3SINK_OK;
  PyObject *r = stopped && !self->spooled ? NULL : do_close(self, S3SINK_LEAVE_SPOOLED);
  if (r) {
    Py_DECREF(r);
  } else {
    PyErr_Clear();
    s3sink_stats s;
    s3sink_get_stats(self->sink, &s);
    if (!stopped && s3sink_last_error(self->sink, &failure) == S3SINK_OK) failure.msg[0] = 0;
    discard_sink(self);
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "s3sink.Writer was garbage-collected unclosed and its final upload "
                         "failed: %llu buffered rows were dropped. %s",
                         (unsigned long long)s.buffered_rows, failure.msg) < 0)
      PyErr_WriteUnraisable((PyObject *)self);
  }
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(saved);
#else
  PyErr_Restore(t, v, tb);
#endif
}

static void Writer_dealloc(WriterObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) return; /* resurrected */
  if (self->sink) { /* finalizer could not run (e.g. at shutdown) */
    s3sink *sink = self->sink;
    self->sink = NULL;
    /* its thread may be waiting for the GIL in the credentials callable */
    Py_BEGIN_ALLOW_THREADS
    s3sink_free(sink);
    Py_END_ALLOW_THREADS
  }
  Py_CLEAR(self->credentials);
  Py_CLEAR(self->on_event);
  for (int i = 0; i < 4; i++) PyMem_RawFree(self->answer[i]);
  rowbuf_free(&self->rb);
  schema_free(&self->sc);
  if (self->lock) PyThread_free_lock(self->lock);
  if (self->state) PyThread_free_lock(self->state);
  PyMem_RawFree(self->final_key);
  Py_CLEAR(self->desc);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyMethodDef Writer_methods[] = {
    {"on_change", (PyCFunction)(void (*)(void))Writer_on_change, METH_FASTCALL | METH_KEYWORDS,
     Writer_on_change_doc},
    {"on_engine_change", (PyCFunction)(void (*)(void))Writer_on_engine_change, METH_FASTCALL,
     Writer_on_engine_change_doc},
    {"on_time_end", (PyCFunction)Writer_on_time_end, METH_O, Writer_on_time_end_doc},
    {"on_end", (PyCFunction)Writer_on_end, METH_NOARGS, Writer_on_end_doc},
    {"flush", (PyCFunction)(void (*)(void))Writer_flush, METH_FASTCALL | METH_KEYWORDS,
     Writer_flush_doc},
    {"close", (PyCFunction)(void (*)(void))Writer_close, METH_VARARGS | METH_KEYWORDS,
     Writer_close_doc},
    {"discard", (PyCFunction)Writer_discard, METH_NOARGS, Writer_discard_doc},
    {"interrupt", (PyCFunction)Writer_interrupt, METH_NOARGS, Writer_interrupt_doc},
    {"__enter__", (PyCFunction)Writer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Writer_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Writer_getset[] = {
    {"stats", (getter)Writer_get_stats, NULL,
     "Counters: objects, rows, bytes (uploaded), buffered_rows, buffered_bytes, "
     "failed_uploads, last_write_ms.", NULL},
    {"failed_uploads", (getter)Writer_get_failed_uploads, NULL,
     "Number of failed upload attempts (their rows were kept).", NULL},
    {"last_key", (getter)Writer_get_last_key, NULL,
     "Key of the last object uploaded (or found under the prefix at open), or None.", NULL},
    {"last_error", (getter)Writer_get_last_error, NULL,
     "The error of the last upload attempt, by any thread (the sink's timer, on_time_end, "
     "flush, close), if it failed; None once one succeeds. A failed attempt is retried "
     "until uploads stop (see failure).", NULL},
    {"failure", (getter)Writer_get_failure, NULL,
     "The error that stopped uploads (permanent, or transient past the retry budget), else "
     "None. The rows are kept; flush(True) or close() tries again.", NULL},
    {"credentials_source", (getter)Writer_get_credentials_source, NULL,
     "Where the credentials come from, e.g. 'the access_key option', 'the credentials "
     "provider (botocore: iam-role)', or the anonymous requests' note.", NULL},
    {"anonymous", (getter)Writer_get_anonymous, NULL,
     "True when requests are not signed (anonymous=True).", NULL},
    {"closed", (getter)Writer_get_closed, NULL, "True once closed.", NULL},
    {"columns", (getter)Writer_get_columns, NULL, "The columns: (name, type, optional).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(Writer_doc,
"Writer(*, columns, **options)\n"
"--\n\n"
"A sink that buffers rows and uploads them as self-contained objects to an S3 bucket.\n\n"
"``columns`` is a list of ``(name, type[, optional])``, type one of column_types().\n"
"``credentials`` (optional) is a callable returning a dict {access_key, secret_key,\n"
"session_token, expires_at, source} or a tuple (access_key, secret_key[, session_token]),\n"
"called again as the credentials near expires_at (seconds since the epoch or a datetime),\n"
"possibly from the sink's own thread; it raises ConfigError for what retrying cannot fix.\n"
"The options are the runtime's, listed with their types, ranges, defaults and docs by\n"
"options() (and docs/options.md). None leaves an option at its default, except where\n"
"options() says ``unlimited``: there it means no limit. Opening checks the bucket\n"
"(HeadBucket) and lists the prefix. The writer has Pathway's ConnectorObserver methods:\n"
"on_change, on_time_end, on_end.");

static PyType_Slot Writer_slots[] = {
    {Py_tp_doc, (void *)Writer_doc},
    {Py_tp_new, Writer_new},
    {Py_tp_init, Writer_init},
    {Py_tp_dealloc, Writer_dealloc},
    {Py_tp_finalize, Writer_finalize},
    {Py_tp_repr, Writer_repr},
    {Py_tp_methods, Writer_methods},
    {Py_tp_getset, Writer_getset},
    {0, NULL}};

static PyType_Spec Writer_spec = {
    .name = "s3sink._s3sink.Writer",
    .basicsize = sizeof(WriterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Writer_slots,
};

int add_writer_type(PyObject *module, modstate *st) {
  st->WriterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Writer_spec, NULL);
  return st->WriterType ? PyModule_AddType(module, st->WriterType) : -1;
}
