/* sink_internal.h - internal: the sink's state, shared by its files:
 *   sink.c        the open objects (buffering, sealing), room for rows, the host's calls;
 *   sink_parts.c  the partitions: routing a row to its open object, bounding their number;
 *   sink_open.c   opening: checks, listing the prefix, taking over a spool (and aborting
 *                 the multipart uploads a crashed run left);
 *   upload.c      the queue of named objects, upload attempts with retries, the flush
 *                 policy and the sink's thread;
 *   multipart.c   the attempts of objects of multipart_threshold_bytes or more: parts,
 *                 each retried on its own, completed without overwriting, or aborted;
 *   sink_events.c the events for the host's callback (on_event): noted, then delivered.
 *
 * Locking: one mutex guards everything but the network call itself; the thread that
 * uploads (the host's or the sink's own) sets `uploading` and drops the lock meanwhile,
 * so the host keeps writing while the sink's thread uploads. The Lua state is only used
 * with the lock held. Functions here expect the lock held unless they say otherwise. */
#ifndef S3SINK_SINK_INTERNAL_H
#define S3SINK_SINK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bytebuf.h"
#include "compress.h"
#include "formatter.h"
#include "keytemplate.h"
#include "lua_host.h"
#include "naming.h"
#include "partition.h"
#include "s3client.h"
#include "s3sink.h"
#include "spool.h"

#define OPEN_RETRY_MS 10000              /* opening gives up on transient errors sooner */
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 30000
#define SPOOL_CHUNK ((size_t)1 << 20)    /* rows reach the spool file in chunks this big */
#define SPOOL_OBJECT_MAX ((uint64_t)5 << 40) /* S3's largest object: a spooled object is
                                                named at a quarter of spool_max_bytes, or
                                                at this size, even while others wait */
#define MAX_RENAMES 8                    /* keys taken by others, in a row, per flush */

/* The multipart upload of a pending object (multipart.c). Every attempt sends the same
 * bytes, so the plan (part size, the parts' and the whole body's SHA-256) is made once;
 * the upload, once created, lives across attempts until it is completed or aborted, so
 * a part that fails is retried alone. */
typedef struct multipart {
  bool planned;
  char identity[65];              /* SHA-256 of the whole body, hex: s3sink-sha256 */
  uint64_t part_bytes;            /* every part but the last */
  uint32_t nparts, done;          /* parts 1..done are uploaded */
  unsigned char (*sha)[32];       /* each part's SHA-256 */
  char **etags;                   /* each uploaded part's ETag */
  uint32_t etags_cap;             /* etags allocated */
  char *upload_id, *upload_key;   /* the live upload (NULL: none) and the key it is for */
  bool drop;                      /* abort the live upload before anything else: its key
                                     was taken, or uploads stopped */
  bool early;                     /* started while the object was open (sink_early_step):
                                     its identity is a random token, since the body was
                                     not known when the upload was created */
  bool sending;                   /* part done+1 is on its way (an early step) */
} multipart;

typedef struct sink_event_node sink_event_node;

/* An object named and waiting for its upload. */
typedef struct pending {
  struct pending *next;
  char *key;
  uint64_t rows, len, row_bytes;  /* len: the whole body, header included, uncompressed */
  int64_t first_time, last_time;  /* engine times of its rows */
  bytebuf body;                   /* without a spool (compressed, once packed) */
  uint64_t segment;               /* with a spool */
  char *extension, *content_type; /* NULL: the sink's (recovered segments keep theirs) */
  partkey *part;                  /* its partition (one reference) */
  bool has_event;                 /* the event-time range of its rows (time_column) */
  int64_t min_event, max_event;
  compress_codec codec;           /* its compression (recovered segments keep theirs) */
  int level;
  bool packed;                    /* compressed (body, or the spool's packed file): the
                                     bytes every attempt sends from then on */
  uint64_t packed_len;
  multipart *mp;                  /* objects sent in parts: their upload, once tried */
  int attempts;                   /* failed attempts so far (of the current request, for
                                     an object sent in parts) */
  bool failing;
  int64_t first_failure_ms, next_try_ms; /* real monotonic clock */
} pending;

/* The open object of one partition: the rows routed to it and not sealed yet. Without a
 * spool, buf holds the header and every such row, [0, complete_len) being the header and
 * complete minibatches (an empty buffer: no rows, no header yet); with a spool, buf holds
 * rows not written to the partition's current segment yet. */
typedef struct sink_part {
  struct sink_part *chain;           /* next in its hash bucket */
  struct sink_part *prev, *next;     /* the sink's list, least recently written first */
  partkey *key;
  bytebuf buf;
  size_t complete_len;
  uint64_t rows, complete_rows;      /* rows in the open object; of those, complete */
  uint64_t row_bytes, complete_bytes; /* their bytes (header excluded) */
  int64_t complete_first_time, complete_last_time, open_first_time, open_last_time;
  bool have_open_first;
  bool complete_has_event, open_has_event; /* event-time ranges (time_column) */
  int64_t complete_min_event, complete_max_event, open_min_event, open_max_event;
  spool_stream *stream;              /* with a spool */
} sink_part;

struct s3sink {
  pthread_mutex_t mu;
  pthread_cond_t cv;          /* an upload ended, an object was queued, stop requested */
  pthread_t thread;
  bool has_thread, stopping, closed;

  luahost *lua;
  s3sink_formatter *fmt;
  naming *naming;
  keytemplate *tmpl;          /* key_template (or the partitions' default): names objects
                                 instead of the naming script */
  partitioner *partitioner;
  bool routes_by_values;      /* rows are read to route them (partition_by, time_column) */
  s3client *client;
  s3client *part_client;      /* a second connection: a sealed object's parts go two at once */
  credcache *creds;           /* what the client signs with (it may refresh them) */
  spool *spool;

  char *prefix, *writer_id, *bucket;
  char *extension, *content_type; /* of the objects: the format's, with compression's */
  compress_codec codec;
  int level;
  s3sink_config opt;          /* the options, completed with their defaults; the strings
                                 are cleared at open (the sink copies those it keeps) */
  size_t max_buffer;          /* memory budget: buffered + queued bytes */
  uint64_t spool_max, spool_object_max;
  bool background;            /* flush() hands uploads to the sink's thread */
  uint64_t rng;               /* backoff jitter */

  /* The open objects, one per partition (one in all without partitions): a hash table
   * by identity and a list, least recently written first. */
  char *header;
  size_t header_len;
  sink_part **buckets;
  size_t nbuckets, nparts, max_parts;
  sink_part *first_part, *last_part;
  sink_part *recent;          /* the partition the last row went to */
  bytebuf ident;              /* a row's partition identity */
  bool row_has_event;         /* the event time of the row being written */
  int64_t row_event;
  uint64_t rows, complete_rows;      /* totals over the open objects */
  uint64_t row_bytes, complete_bytes;
  size_t open_mem;            /* capacity of their buffers (without a spool) */
  size_t spool_mem;           /* bytes in their buffers (with a spool) */
  bytebuf scratch;            /* a formatted row kept while its write waits for room */
  bool held;                  /* s3sink_try_write left it there */
  sink_part *held_part;       /* its partition, kept while it waits */
  bool held_has_event;
  int64_t held_event;
  bool interrupted;           /* writes do not wait for room any more */
  int64_t held_time;

  pending *head, *tail;
  uint64_t npending;
  size_t pending_mem;         /* capacity of the queued bodies in memory */
  bool uploading;

  bool failed;                /* uploads stopped on `failure` */
  s3sink_err failure;
  s3sink_err last_err;        /* of the last failed attempt; code 0 once one succeeds */

  int64_t last_upload_ms;     /* flush-policy clock */
  uint64_t sequence;          /* objects named */
  int64_t last_stamp_ms;      /* flush time of the last object named: never goes back */
  char *last_named;           /* greatest key named or found under the prefix */
  char *last_uploaded;
  s3sink_stats stats;

  /* The open object going up while it grows (see sink_early_step): named, with its
   * multipart upload, until it is sealed into the queue. */
  bool early_ok;              /* this sink may (background, no spool, no compression, no
                                 routing, default naming or key template) */
  bool early_off;             /* an early step failed: not for this object any more */
  uint64_t early_wake;        /* the open buffer's length at which a write wakes the sink's
                                 thread for the next part (UINT64_MAX: none) */
  pending *early;
  char *early_copy;           /* one part copied out of the growing buffer */

  pthread_mutex_t events_mu;  /* held while events are delivered: one delivery at a time */
  sink_event_node *events, **events_tail; /* noted, not delivered yet (guarded by mu) */
};

static inline bool sink_has_complete(const s3sink *s) { return s->complete_rows > 0; }

static inline bool sink_has_open(const s3sink *s) { return s->rows > s->complete_rows; }

/* Notes an event for the host's callback (a copy: ev's strings may go); nothing
 * without one. Lock held. */
void sink_note_event(s3sink *s, const s3sink_event *ev);

/* Notes an event of the object p (its key, rows, size and attempts): kind UPLOADED or
 * RECOVERED with elapsed_ms, RETRY (when: p->next_try_ms) or STOPPED with err. */
void sink_note_object_event(s3sink *s, s3sink_event_kind kind, const pending *p,
                            int64_t elapsed_ms, const s3sink_err *err);

/* Hands the noted events to the callback, with no lock held: called by the host's calls
 * (host_call) and the sink's thread (which delivers nothing with events_on_host_calls). */
void sink_deliver_events(s3sink *s, bool host_call);

/* Drops events never delivered (the sink is freed). */
void sink_events_free(s3sink *s);

/* Milliseconds of the clock `id`. */
int64_t sink_clock_ms(clockid_t id);

/* Real monotonic time: backoff and retry budgets. */
int64_t sink_real_ms(void);

/* The flush policy's clock: the host's, or monotonic (a step of the wall clock must not
 * stall or hurry uploads). */
int64_t sink_policy_ms(s3sink *s);

/* Wall-clock time for object names. */
int64_t sink_wall_ms(s3sink *s);

/* "Full jitter": uniform in [0, min(cap, base * 2^attempts)]. */
int64_t sink_backoff_ms(s3sink *s, int attempts);

/* Stops uploads on e (whose message already names the object): the host's next call
 * returns it, and so does the caller, with the same message. */
int sink_stop_uploads(s3sink *s, s3sink_err *e);

/* Fills err with "out of memory <doing>"; returns it. */
s3sink_err *sink_err_oom(s3sink_err *err, const char *doing);

/* Copies the error that stopped uploads into err (if non-NULL); returns its code. */
int sink_failure_error(const s3sink *s, s3sink_err *err);

/* Keeps in *slot the greater of it and key (keys of this sink only increase). */
void sink_take_key(char **slot, const char *key);

/* Names p (its rows, size, times and partition; p->key, if set, is a key it had and lost)
 * with the key template or the naming policy (*key: malloc'ed, the caller's). */
int sink_name_object(s3sink *s, const pending *p, const char *extension, char **key,
                     s3sink_err *err);

/* Whether keys are named per partition (a key template, or rows routed to partitions):
 * then each partition's keys increase, and the prefix is not listed at open. */
bool sink_names_per_partition(const s3sink *s);

/* Puts p, which the queue then owns, at the end of the queue of pending objects. */
void sink_enqueue(s3sink *s, pending *p);

void sink_pending_free(pending *p);

/* Names the complete minibatches of every partition and queues them, one object per
 * partition. With `split`, the rows of the unfinished minibatch go too (it does not fit
 * the budget: it spans objects). A failure stops uploads: nothing is retried in a loop. */
int sink_seal(s3sink *s, bool split, s3sink_err *err);

/* The same for one partition. */
int sink_seal_part(s3sink *s, sink_part *part, bool split, s3sink_err *err);

/* --- sink_parts.c --- */

/* Sets up the table of partitions for max_parts of them. */
int sink_parts_init(s3sink *s, size_t max_parts, s3sink_err *err);
void sink_parts_free(s3sink *s);

/* The open object of the row's partition, created if need be (when max_open_partitions
 * are kept, the least recently written one without rows goes, sealing them first if
 * need be); sets row_has_event / row_event. */
int sink_part_route(s3sink *s, const s3sink_value *values, sink_part **out, s3sink_err *err);

/* Frees the buffers of partitions without rows (memory for others' rows); whether any
 * was freed. */
bool sink_parts_release_idle(s3sink *s);

/* The flush policy, with the lock held (see s3sink_flush). */
int sink_flush_locked(s3sink *s, bool forced, s3sink_err *err);

/* The sink's thread: uploads what is due and retries what failed, until `stopping`. */
void *sink_uploader_main(void *arg);

/* A pthread cleanup handler (arg: the sink) for a thread that ends inside a request it
 * made with the lock released, `uploading` set: a credentials provider that calls Python
 * is ended that way when the interpreter exits. Clears `uploading`, so nothing waits for
 * that upload forever. */
void sink_upload_abandoned(void *arg);

/* One attempt of the head of the queue as a multipart upload, from where the last one
 * left it: (abort a dropped upload,) plan, check the key, create, the parts left, then
 * complete without overwriting. The lock is released during each request (`uploading`
 * keeps the head in place). *outcome as s3client_put_new_object's; *unfinished when the
 * sink's own thread (`interruptible`) stopped between parts because the sink is
 * stopping. A failure returns its error: the upload stays for the next attempt. */
int sink_multipart_attempt(s3sink *s, const s3body *body, bool interruptible,
                           s3client_put_outcome *outcome, bool *unfinished, s3sink_err *err);

/* Aborts the head's live multipart upload, if any (the lock released meanwhile); on
 * success nothing of it is left. */
int sink_multipart_abort(s3sink *s, s3sink_err *err);

void sink_multipart_free(multipart *m);

/* Early uploads. A static run (Pathway reads a static source as one minibatch) would
 * upload its one large object after the last row; instead, once the open object holds
 * one part (multipart_part_bytes), the sink's thread names it and sends its parts while rows
 * are still written (copied out of the buffer under the lock, sent without it), and the
 * seal hands the upload to the queued object, which sends the rest and completes it.
 * Nothing is visible before the Complete, which comes only after the seal: objects still
 * hold complete minibatches only. */

/* Whether the sink's thread has a part of the open object to send now (lock held). */
bool sink_early_due(const s3sink *s);

/* Sends the next part of the open object (creating its upload first); the lock is
 * released during requests (`uploading` set). A failure ends early uploads for this
 * object: it goes up whole once sealed. */
void sink_early_step(s3sink *s);

/* Whether the early upload holds bytes beyond `len` (the object would be sealed shorter
 * than what was sent: rows of an unfinished minibatch). */
bool sink_early_beyond(const s3sink *s, uint64_t len);

/* At a seal of the open object as `len` bytes: the early pending object (named, with its
 * upload; the upload is marked to be aborted and made anew if it went beyond len), or
 * NULL if there is none. The caller fills in the rest and queues it. */
pending *sink_early_take(s3sink *s, uint64_t len);

/* The open object lost rows (unfinished ones dropped) or the sink goes away: aborts the
 * early upload unless what it sent fits the first `keep` bytes (0: aborts it anyway), the
 * lock released meanwhile. */
void sink_early_cancel(s3sink *s, uint64_t keep);

#endif
