/* sink_events.c - the sink's events (s3sink_event_fn): noted under the sink's lock where
 * they happen, handed to the host's callback after that lock is released, so a callback
 * that takes the host's own locks (Python's GIL) never waits while holding the sink's. */
#include <stdlib.h>
#include <string.h>

#include "sink_internal.h"

struct sink_event_node {
  struct sink_event_node *next;
  s3sink_event ev;
  char text[]; /* the key, message and S3 code, each with its NUL */
};

static const char *copy_text(char **at, const char *text) {
  if (!text) return NULL;
  size_t n = strlen(text) + 1;
  memcpy(*at, text, n);
  const char *copy = *at;
  *at += n;
  return copy;
}

void sink_note_event(s3sink *s, const s3sink_event *ev) {
  if (!s->opt.on_event) return;
  size_t len = 0;
  const char *texts[] = {ev->key, ev->message, ev->s3_code};
  for (size_t i = 0; i < 3; i++) len += texts[i] ? strlen(texts[i]) + 1 : 0;
  sink_event_node *n = malloc(sizeof *n + len);
  if (!n) return; /* an event is information only: the counters stay exact */
  n->next = NULL;
  n->ev = *ev;
  char *at = n->text;
  n->ev.key = copy_text(&at, ev->key);
  n->ev.message = copy_text(&at, ev->message);
  n->ev.s3_code = copy_text(&at, ev->s3_code);
  *s->events_tail = n;
  s->events_tail = &n->next;
}

void sink_note_object_event(s3sink *s, s3sink_event_kind kind, const pending *p,
                            int64_t elapsed_ms, const s3sink_err *err) {
  if (!s->opt.on_event) return;
  s3sink_event ev = {.kind = kind, .key = p->key, .rows = p->rows,
                     .bytes = p->packed ? p->packed_len : p->len, .elapsed_ms = elapsed_ms,
                     .attempts = p->attempts, .retry_in_ms = 0,
                     .code = err ? err->code : 0, .message = err ? err->msg : NULL,
                     .s3_code = err && err->s3_code[0] ? err->s3_code : NULL};
  if (kind == S3SINK_EVENT_RETRY) {
    ev.elapsed_ms = 0;
    int64_t wait = p->next_try_ms - sink_real_ms();
    ev.retry_in_ms = wait > 0 ? wait : 0;
  }
  sink_note_event(s, &ev);
}

static void unlock_events(void *arg) { pthread_mutex_unlock(arg); }

void sink_deliver_events(s3sink *s, bool host_call) {
  if (!s->opt.on_event || (!host_call && s->opt.events_on_host_calls)) return;
  /* one delivery at a time, so events arrive in order; a thread ended inside the
   * callback (Python's at interpreter exit) lets go of it */
  pthread_mutex_lock(&s->events_mu);
  pthread_cleanup_push(unlock_events, &s->events_mu);
  for (;;) {
    pthread_mutex_lock(&s->mu);
    sink_event_node *n = s->events;
    s->events = NULL;
    s->events_tail = &s->events;
    pthread_mutex_unlock(&s->mu);
    if (!n) break;
    while (n) {
      sink_event_node *next = n->next;
      s->opt.on_event(s->opt.on_event_ud, &n->ev);
      free(n);
      n = next;
    }
  }
  pthread_cleanup_pop(1);
}

void sink_events_free(s3sink *s) {
  for (sink_event_node *n = s->events, *next; n; n = next) {
    next = n->next;
    free(n);
  }
  s->events = NULL;
  s->events_tail = &s->events;
}
