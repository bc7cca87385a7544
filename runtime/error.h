/* error.h - internal: filling s3sink_err. */
#ifndef S3SINK_ERROR_H
#define S3SINK_ERROR_H

#include "s3sink.h"

#if defined(__GNUC__)
#define S3SINK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define S3SINK_PRINTF(a, b)
/* Writes "a, b, c" into buf (truncated to cap): name_at(i, ud) for i = 0, 1, ... until it
 * returns NULL, each between `quote`s. For messages that list what is accepted. */
void err_join_names(char *buf, size_t cap, const char *quote,
                    const char *(*name_at)(size_t i, void *ud), void *ud);

#endif

/* Fills err (if non-NULL) with code and a printf-style message; returns code. */
int err_set(s3sink_err *err, int code, const char *fmt, ...) S3SINK_PRINTF(3, 4);

/* Puts a printf-style prefix before err's message (truncating the end if needed). */
void err_prefix(s3sink_err *err, const char *fmt, ...) S3SINK_PRINTF(2, 3);

/* Writes "a, b, c" into buf (truncated to cap): name_at(i, ud) for i = 0, 1, ... until it
 * returns NULL, each between `quote`s. For messages that list what is accepted. */
void err_join_names(char *buf, size_t cap, const char *quote,
                    const char *(*name_at)(size_t i, void *ud), void *ud);

#endif
