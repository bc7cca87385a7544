/*
 * numfmt.h - internal: value text exactly as Pathway's engine writes it, and the `fmt`
 * helper library that format scripts see.
 */
#ifndef S3SINK_NUMFMT_H
#define S3SINK_NUMFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lua_State;

/* Each writes into buf (no NUL needed by callers, but one is written) and returns the
 * number of bytes written, NUL excluded. buf must hold at least S3SINK_NUMBUF bytes. */
#define S3SINK_NUMBUF 64
size_t s3sink_fmt_int(char *buf, int64_t v);
size_t s3sink_fmt_float_rust(char *buf, double v);   /* Rust `{:?}` of f64 (CSV cells) */
size_t s3sink_fmt_float_json(char *buf, double v);   /* serde_json (zmij); non-finite: null */
size_t s3sink_fmt_datetime(char *buf, int64_t ns, bool utc); /* %Y-%m-%dT%H:%M:%S.%9f[+0000] */

/* Standard base64 with '=' padding of n bytes into out, which must hold
 * S3SINK_BASE64_LEN(n) bytes (no NUL is written); returns that length. */
#define S3SINK_BASE64_LEN(n) (((n) + 2) / 3 * 4)
size_t s3sink_base64(const unsigned char *s, size_t n, char *out);

/* The escape serde_json writes for byte c inside a JSON string ('"', '\\', 0x00-0x1F:
 * short forms \b \t \n \f \r, else \u00xx in lowercase hex) into out; returns its
 * length, or 0 if c is written as it is. */
size_t s3sink_json_escape(unsigned char c, char out[6]);

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (any sign). */
int64_t s3sink_days_from_civil(int64_t y, int m, int d);

/* Parses a UTC time "20150830T123600Z", "2015-08-30T12:36:00Z" or
 * "2015-08-30T12:36:00.123Z" (fraction ignored) into seconds since the epoch. */
bool s3sink_parse_utc(const char *s, int64_t *out);

/* Pushes the `fmt` helper table onto the Lua stack (see README, "Format scripts"). */
int s3sink_push_fmtlib(struct lua_State *L);

#endif
