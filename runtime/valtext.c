/* valtext.c - value text exactly as Pathway's engine writes it: integers, floats (shortest
 * round-trip digits), datetimes, base64, JSON escapes. The public face is s3sink_text.h;
 * docs/value-text.md gives the rules. Pure functions: no allocation, no Lua. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3sink_text.h"

/* ----------------------------------------------------------------------------------------
 * Integers
 * -------------------------------------------------------------------------------------- */

size_t s3sink_text_int(char *buf, int64_t v) {
  /* two digits per division: integers are most of a row's cells (time, diff, ids) */
  static const char pairs[201] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char tmp[24];
  char *p = tmp + sizeof tmp; /* digits are written backwards, ending at tmp's end */
  /* negate in unsigned arithmetic so INT64_MIN works */
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  while (u >= 100) {
    unsigned d = (unsigned)(u % 100) * 2;
    u /= 100;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  }
  if (u >= 10) {
    *--p = pairs[u * 2 + 1];
    *--p = pairs[u * 2];
  } else {
    *--p = (char)('0' + u);
  }
  size_t len = 0, n = (size_t)(tmp + sizeof tmp - p);
  if (v < 0) buf[len++] = '-';
  memcpy(buf + len, p, n);
  len += n;
  buf[len] = '\0';
  return len;
}

/* ----------------------------------------------------------------------------------------
 * Floats: shortest round-trip digits
 *
 * The digits are those of the shortest decimal that reads back as the same double, and of
 * those the closest to it: what Python's repr, Rust's {:?} and zmij all print. They come
 * from the C library's correctly rounded "%.*e", checked with strtod. Both calls only see
 * digits and an exponent ("12345e-7"), so a locale whose decimal point is not '.' cannot
 * change the result.
 * -------------------------------------------------------------------------------------- */

#define MAXDIG 17 /* a double never needs more significant digits */

/* Parses "%.*e" output (optional sign, digits around a decimal point of any spelling,
 * 'e', exponent) into its digits and its decimal exponent. Returns the digit count. */
static int parse_sci(const char *s, char *dig, int *exp10) {
  int n = 0;
  for (; *s && *s != 'e' && *s != 'E'; s++)
    if (*s >= '0' && *s <= '9' && n < MAXDIG) dig[n++] = *s;
  int neg = 0, e = 0;
  if (*s) s++;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  for (; *s >= '0' && *s <= '9'; s++) e = e * 10 + (*s - '0');
  *exp10 = neg ? -e : e;
  return n;
}

/* Reads d1.d2...dn x 10^exp10 back (written as an integer and an exponent, so without a
 * decimal point); *back receives the double it gives. */
static bool reads_back(const char *dig, int n, int exp10, double v, double *back) {
  char s[48];
  snprintf(s, sizeof s, "%.*se%d", n, dig, exp10 - (n - 1));
  *back = strtod(s, NULL);
  return *back == v;
}

/* The grid point next to dig (n digits) on the given side, in place, keeping n digits:
 * 99..9 + 1 becomes 10..0 with exp10 + 1, and 10..0 - 1 becomes 99..9 with exp10 - 1
 * (the grid below a power of ten is ten times finer). */
static void step_digits(char *dig, int n, int *exp10, bool up) {
  int i = n - 1;
  if (up) {
    while (i >= 0 && dig[i] == '9') dig[i--] = '0';
    if (i >= 0) {
      dig[i]++;
    } else {
      dig[0] = '1';
      (*exp10)++;
    }
  } else {
    while (i >= 0 && dig[i] == '0') dig[i--] = '9';
    if (i > 0 || dig[0] > '1') {
      dig[i]--;
    } else {
      for (int k = 0; k < n; k++) dig[k] = '9';
      (*exp10)--;
    }
  }
}

/* Tries the k-digit decimals nearest to v: the correctly rounded one (given in dig, n
 * digits) and, when that one does not read back, its neighbour on v's other side. The
 * rounding interval around v is not symmetric at powers of two, so the nearest decimal
 * can fall outside it while the neighbour is inside. On success dig/exp10 hold the one
 * that reads back. */
static bool try_digits(double v, char *dig, int n, int *exp10, bool neighbour) {
  double back;
  if (reads_back(dig, n, *exp10, v, &back)) return true;
  if (!neighbour) return false;
  char alt[MAXDIG];
  int ae = *exp10;
  memcpy(alt, dig, (size_t)n);
  step_digits(alt, n, &ae, back < v);
  if (!reads_back(alt, n, ae, v, &back)) return false;
  memcpy(dig, alt, (size_t)n);
  *exp10 = ae;
  return true;
}

/* v rounded to k significant digits with "%.*e" (correctly rounded by the C library). */
static int round_printf(double v, int k, char *dig, int *exp10) {
  char s[64];
  snprintf(s, sizeof s, "%.*e", k - 1, v);
  return parse_sci(s, dig, exp10);
}

/* v rounded to k < 17 digits from its 17-digit rounding d17, without printing again.
 * Rounding twice is only wrong when the dropped digits are exactly half a unit (5, 50),
 * where v itself may be on either side: then print again. */
static int round_from17(double v, const char *d17, int e17, int k, char *dig, int *exp10) {
  int dropped = 0, half = 1;
  for (int i = k; i < MAXDIG; i++) {
    dropped = dropped * 10 + (d17[i] - '0');
    half *= 10;
  }
  half /= 2;
  if (dropped == half) return round_printf(v, k, dig, exp10);
  memcpy(dig, d17, (size_t)k);
  *exp10 = e17;
  if (dropped > half) step_digits(dig, k, exp10, true);
  return k;
}

/* Shortest digits of a normal v > 0 that is m / 10^k for an integer m < 10^15 and
 * k <= 22, else 0. Both m and 10^k are exact doubles, so the (correctly rounded) division
 * gives exactly what strtod would read from "m e-k": no printing or parsing. Below 10^15
 * at most one m per k can read back (they are more than an ulp apart), the float product
 * is within 0.2 of it, and the smallest such k gives the fewest digits. */
static int short_decimal(double v, char *dig, int *exp10) {
#if FLT_EVAL_METHOD == 0 /* needs double arithmetic without extra precision */
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  for (int k = 0; k <= 22; k++) {
    double p = v * pow10[k];
    if (p >= 1e15) break;
    double m = floor(p + 0.5);
    if (m / pow10[k] == v) {
      char tmp[24];
      int n = (int)s3sink_text_int(tmp, (int64_t)m);
      memcpy(dig, tmp, (size_t)n);
      *exp10 = n - 1 - k;
      return n;
    }
  }
#else
  (void)v;
  (void)dig;
  (void)exp10;
#endif
  return 0;
}

/* v finite and > 0. Fills dig with the shortest round-trip digits (no trailing zeros) so
 * that v ~ d1.d2...dn x 10^exp10; returns n. */
static int shortest_digits(double v, char *dig, int *exp10) {
  int n = 0;
  if (v < 9007199254740992.0 && v == (double)(uint64_t)v) {
    /* an integer below 2^53: every integer near it is a double, so its own digits are
     * the shortest that read back */
    char tmp[24];
    n = (int)s3sink_text_int(tmp, (int64_t)v);
    memcpy(dig, tmp, (size_t)n);
    *exp10 = n - 1;
  } else if (v < DBL_MIN) {
    /* subnormal: few significant bits, so few digits may do; search from one digit */
    for (int k = 1; k <= MAXDIG; k++) {
      n = round_printf(v, k, dig, exp10);
      if (k == MAXDIG || try_digits(v, dig, n, exp10, true)) break;
    }
  } else if ((n = short_decimal(v, dig, exp10)) == 0) {
    /* For a normal double, a decimal of <= 15 digits that reads back is v rounded to 15
     * digits (half an ulp is less than 0.12 units of the 15th digit): no shorter search
     * and no neighbour is needed there. 17 digits always read back. */
    char d17[MAXDIG];
    int e17;
    if (round_printf(v, MAXDIG, d17, &e17) != MAXDIG) { /* cannot happen with a sane libc */
      n = round_printf(v, MAXDIG, dig, exp10);
    } else {
      n = round_from17(v, d17, e17, 15, dig, exp10);
      if (!try_digits(v, dig, n, exp10, false)) {
        n = round_from17(v, d17, e17, 16, dig, exp10);
        if (!try_digits(v, dig, n, exp10, true)) {
          memcpy(dig, d17, MAXDIG);
          n = MAXDIG;
          *exp10 = e17;
        }
      }
    }
  }
  while (n > 1 && dig[n - 1] == '0') n--;
  return n;
}

/* Bits after the binary point of a finite v > 0 (0 for integers). */
static int frac_bits(double v) {
  int ex;
  double m = frexp(v, &ex); /* v = m x 2^ex, 0.5 <= m < 1, m of at most 53 bits */
  uint64_t M = (uint64_t)ldexp(m, 53);
  int tz = 0;
  while (!(M & 1)) {
    M >>= 1;
    tz++;
  }
  int bits = 53 - ex - tz;
  return bits > 0 ? bits : 0;
}

/* Rust's {:?} breaks an exact tie between two shortest candidates upwards, where printf,
 * Python and zmij pick the even digit: 688673779587758.25 is "...758.3" in Rust, "...758.2"
 * elsewhere. If v lies exactly halfway between dig (n digits) and the next candidate up,
 * and that one reads back too, take it. */
static int tie_up(double v, char *dig, int n, int *exp10) {
  /* A tie is v = (2D+1)/2 x 10^p, p = exp10 - n + 1. For p <= 0 that is an odd integer
   * over 2^(1-p) (5^-p divides the numerator, v being binary): v has exactly 1 - p bits
   * after the binary point. Most doubles do not, and need no printing below. */
  int p = *exp10 - n + 1;
  if (p <= 0 && frac_bits(v) != 1 - p) return n;
  char s[800];
  /* digits beyond the tie: non-zero ones show at once in most cases; a double's exact
   * expansion has at most 767 significant digits, so the long print is rare and exact */
  for (int extra = 40; extra <= 770; extra += 730) {
    snprintf(s, sizeof s, "%.*e", n + extra, v);
    char *e = strchr(s, 'e');
    if (!e || atoi(e + 1) != *exp10 || s[0] != dig[0]) return n;
    for (int i = 1; i < n; i++)
      if (s[i + 1] != dig[i]) return n;
    if (s[n + 1] != '5') return n;
    for (char *q = s + n + 2; q < e; q++)
      if (*q != '0') return n;
  }
  char up[MAXDIG + 1];
  int ue = *exp10;
  double back;
  memcpy(up, dig, (size_t)n);
  step_digits(up, n, &ue, true);
  if (!reads_back(up, n, ue, v, &back)) return n;
  memcpy(dig, up, (size_t)n);
  *exp10 = ue;
  while (n > 1 && dig[n - 1] == '0') n--;
  return n;
}

/* Writes a finite, non-zero v with fixed notation for lo <= exp10 <= 15 and exponent
 * notation otherwise, with a '+' before positive exponents when `plus`. */
static size_t write_finite(char *buf, double v, int lo, bool plus, bool ties_up) {
  char dig[MAXDIG];
  int e;
  size_t len = 0;
  if (signbit(v)) {
    buf[len++] = '-';
    v = -v;
  }
  int n = shortest_digits(v, dig, &e);
  if (ties_up) n = tie_up(v, dig, n, &e);
  if (e >= lo && e <= 15) {
    if (e >= 0) { /* ddd.ddd, at least one digit after the point */
      for (int i = 0; i <= e; i++) buf[len++] = i < n ? dig[i] : '0';
      buf[len++] = '.';
      if (n > e + 1)
        for (int i = e + 1; i < n; i++) buf[len++] = dig[i];
      else
        buf[len++] = '0';
    } else { /* 0.000ddd */
      buf[len++] = '0';
      buf[len++] = '.';
      for (int i = -1; i > e; i--) buf[len++] = '0';
      for (int i = 0; i < n; i++) buf[len++] = dig[i];
    }
  } else { /* d.ddde[+|-]x */
    buf[len++] = dig[0];
    if (n > 1) {
      buf[len++] = '.';
      for (int i = 1; i < n; i++) buf[len++] = dig[i];
    }
    buf[len++] = 'e';
    if (e < 0) {
      buf[len++] = '-';
      e = -e;
    } else if (plus) {
      buf[len++] = '+';
    }
    len += s3sink_text_int(buf + len, e);
  }
  buf[len] = '\0';
  return len;
}

static size_t put(char *buf, const char *s) {
  size_t n = strlen(s);
  memcpy(buf, s, n + 1);
  return n;
}

size_t s3sink_text_float_csv(char *buf, double v) {
  if (isnan(v)) return put(buf, "NaN");
  if (isinf(v)) return put(buf, v < 0 ? "-inf" : "inf");
  if (v == 0) return put(buf, signbit(v) ? "-0.0" : "0.0");
  return write_finite(buf, v, -4, false, true);
}

size_t s3sink_text_float_json(char *buf, double v) {
  if (!isfinite(v)) return put(buf, "null");
  if (v == 0) return put(buf, signbit(v) ? "-0.0" : "0.0");
  return write_finite(buf, v, -5, true, false);
}

/* ----------------------------------------------------------------------------------------
 * Datetimes
 * -------------------------------------------------------------------------------------- */

/* Proleptic Gregorian date of a day count since 1970-01-01 (negative before). Works in
 * 400-year eras of 146097 days that start on March 1st, so leap days end each year. */
static void civil_date(int64_t days, int64_t *y, int *m, int *d) {
  int64_t z = days + 719468; /* days since 0000-03-01 */
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;                                   /* [0, 146096] */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                                  /* 0 = March */
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *p, int64_t v, int width) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

size_t s3sink_text_datetime(char *buf, int64_t ns, bool utc) {
  const int64_t ns_per_day = INT64_C(86400000000000);
  int64_t days = ns / ns_per_day, rem = ns % ns_per_day;
  if (rem < 0) { /* floor division: times before 1970 count back from midnight */
    days--;
    rem += ns_per_day;
  }
  int64_t secs = rem / 1000000000, frac = rem % 1000000000, y;
  int m, d;
  civil_date(days, &y, &m, &d);
  /* int64 nanoseconds reach 1677..2262: always four year digits */
  char *p = buf;
  put_digits(p, y, 4);
  p[4] = '-';
  put_digits(p + 5, m, 2);
  p[7] = '-';
  put_digits(p + 8, d, 2);
  p[10] = 'T';
  put_digits(p + 11, secs / 3600, 2);
  p[13] = ':';
  put_digits(p + 14, secs / 60 % 60, 2);
  p[16] = ':';
  put_digits(p + 17, secs % 60, 2);
  p[19] = '.';
  put_digits(p + 20, frac, 9);
  size_t len = 29;
  if (utc) len += put(p + len, "+0000");
  buf[len] = '\0';
  return len;
}

/* ----------------------------------------------------------------------------------------
 * Calendar, base64, JSON escapes
 * -------------------------------------------------------------------------------------- */

int64_t s3sink_text_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool s3sink_text_parse_utc(const char *s, int64_t *out) {
  static const int width[6] = {4, 2, 2, 2, 2, 2};
  static const char dashed[6] = {'-', '-', 'T', ':', ':', 0};
  static const char basic[6] = {0, 0, 'T', 0, 0, 0};
  const char *seps = (strlen(s) > 4 && s[4] == '-') ? dashed : basic;
  int v[6] = {0};
  for (int f = 0; f < 6; f++) {
    for (int i = 0; i < width[f]; i++, s++) {
      if (*s < '0' || *s > '9') return false;
      v[f] = v[f] * 10 + (*s - '0');
    }
    if (seps[f] && *s++ != seps[f]) return false;
  }
  if (*s == '.')
    for (s++; *s >= '0' && *s <= '9'; s++) {}
  if (s[0] != 'Z' || s[1]) return false;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1] || v[3] > 23 || v[4] > 59 ||
      v[5] > 60)
    return false;
  *out = s3sink_text_days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
  return true;
}

size_t s3sink_text_base64(const unsigned char *s, size_t n, char *out) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t k = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned w = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
    out[k++] = alphabet[w >> 18];
    out[k++] = alphabet[w >> 12 & 63];
    out[k++] = alphabet[w >> 6 & 63];
    out[k++] = alphabet[w & 63];
  }
  if (i < n) { /* 1 or 2 bytes left */
    unsigned w = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
    out[k++] = alphabet[w >> 18];
    out[k++] = alphabet[w >> 12 & 63];
    out[k++] = i + 1 < n ? alphabet[w >> 6 & 63] : '=';
    out[k++] = '=';
  }
  return k;
}

size_t s3sink_text_json_escape(unsigned char c, char out[6]) {
  static const char hex[] = "0123456789abcdef";
  if (c >= 0x20 && c != '"' && c != '\\') return 0;
  out[0] = '\\';
  switch (c) {
  case '"': out[1] = '"'; return 2;
  case '\\': out[1] = '\\'; return 2;
  case '\b': out[1] = 'b'; return 2;
  case '\t': out[1] = 't'; return 2;
  case '\n': out[1] = 'n'; return 2;
  case '\f': out[1] = 'f'; return 2;
  case '\r': out[1] = 'r'; return 2;
  default:
    out[1] = 'u';
    out[2] = '0';
    out[3] = '0';
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
  }
}
