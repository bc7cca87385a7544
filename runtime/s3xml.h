/* s3xml.h - internal: the little XML reading the S3 client needs. S3 answers (errors,
 * listings) are flat, machine-written documents, so finding an element by name and
 * decoding its text is enough: no CDATA, comments, namespace prefixes or validation. */
#ifndef S3SINK_S3XML_H
#define S3SINK_S3XML_H

#include <stdbool.h>
#include <stddef.h>

#include "bytebuf.h"

/* Finds the first <tag ...>text</tag> (or <tag/>) within [s, end); attributes allowed.
 * Sets the raw text range [*ts, *te) and, if after is not NULL, the position after the
 * element. */
bool s3xml_find(const char *s, const char *end, const char *tag, const char **ts,
                const char **te, const char **after);

/* Decodes the raw text p[0..n) (the five named entities and character references) into
 * out, which is reset first and NUL-terminated. False when out of memory or on a
 * malformed entity. */
bool s3xml_text(const char *p, size_t n, bytebuf *out);

/* The decoded text of the first <tag> within [s, end) into dst (truncated to cap); empty
 * if absent or malformed. */
void s3xml_copy(const char *s, const char *end, const char *tag, char *dst, size_t cap);

#endif
