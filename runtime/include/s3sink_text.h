/*
 * s3sink_text.h - value text: the exact text the formats write for values, for hosts that
 * build the JSON text of composite values (S3SINK_V_JSON: tuples, lists, arrays, JSON)
 * themselves. A host must write a float, a datetime or bytes inside such a value exactly
 * as the bundled formats write them in a cell, so it uses these rather than its own
 * language's printing.
 *
 * Every function is pure: no allocation, no locale, no global state, safe from any
 * thread. Output goes to a buffer the caller owns, of the size stated; nothing is kept.
 */
#ifndef S3SINK_TEXT_H
#define S3SINK_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of the buffer the number and datetime writers below need. They write the text and
 * a NUL, and return the length of the text (NUL excluded). */
#define S3SINK_TEXT_NUMBUF 64

/* A 64-bit integer in decimal. */
size_t s3sink_text_int(char *buf, int64_t v);

/* A float as JSON cells hold it (serde_json's shortest round-trip text, "1.0", "1e-7");
 * NaN and infinities are null. */
size_t s3sink_text_float_json(char *buf, double v);

/* A float as CSV cells hold it (Rust's `{:?}`: "1.0", "1e-5", "NaN", "inf"). */
size_t s3sink_text_float_csv(char *buf, double v);

/* Nanoseconds since 1970-01-01T00:00:00 as "%Y-%m-%dT%H:%M:%S.%9f", followed by "+0000"
 * when `utc` (a datetime_utc value; without it, a naive one). */
size_t s3sink_text_datetime(char *buf, int64_t ns, bool utc);

/* Size of the base64 text of n bytes. */
#define S3SINK_TEXT_BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Standard base64 with '=' padding (how bytes are written) of the n bytes at s into out,
 * which must hold S3SINK_TEXT_BASE64_LEN(n) bytes; no NUL is written. Returns that length. */
size_t s3sink_text_base64(const unsigned char *s, size_t n, char *out);

/* The escape serde_json writes for byte c inside a JSON string ('"', '\\' and 0x00-0x1F:
 * \b \t \n \f \r, else \u00xx in lowercase hex) into out; returns its length, or 0 when c
 * is written as it is. Every other byte, UTF-8 included, is written as it is. */
size_t s3sink_text_json_escape(unsigned char c, char out[6]);

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (negative before it). */
int64_t s3sink_text_days_from_civil(int64_t y, int m, int d);

/* Parses a UTC time as S3 and SigV4 write it, "20150830T123600Z", "2015-08-30T12:36:00Z"
 * or "2015-08-30T12:36:00.123Z" (the fraction is ignored), into seconds since the epoch.
 * False, *out untouched, if s is not such a time. */
bool s3sink_text_parse_utc(const char *s, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* S3SINK_TEXT_H */
