/* ascii.h - internal: ASCII case folding and hex digits for protocol text (header names,
 * percent-escapes, digests). The C library's tolower() and friends follow the locale,
 * which protocol text must not. */
#ifndef S3SINK_ASCII_H
#define S3SINK_ASCII_H

#include <stdbool.h>
#include <stddef.h>

static inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* Whether the first n bytes of a and b are equal but for ASCII case. */
static inline bool ascii_ieq_n(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

/* Whether the strings a and b are equal but for ASCII case. */
static inline bool ascii_ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (ascii_lower(*a) != ascii_lower(*b)) return false;
  return *a == *b;
}

/* The value of a hex digit (either case), or -1. */
static inline int ascii_hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Writes in[0..n) as lowercase hex and a NUL into out (2 * n + 1 bytes). */
static inline void ascii_hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

#endif
