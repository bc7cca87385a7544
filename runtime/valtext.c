/* valtext.c - value text exactly as Pathway's engine writes it: integers, floats (shortest
 * round-trip digits), datetimes, base64, JSON escapes. The public face is s3sink_text.h;
 * docs/value-text.md gives the rules. Pure functions: no allocation, no Lua. */
#include <math.h>
#include <string.h>

#include "s3sink_text.h"

/* ----------------------------------------------------------------------------------------
 * Integers
 * -------------------------------------------------------------------------------------- */

/* Two digits per step: integers are most of a row's cells (time, diff, ids). */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* The number of decimal digits of u (1..20). */
static int decimal_digits(uint64_t u) {
  static const uint64_t pow10[20] = { /* 0 first: zero has one digit */
      0, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
      UINT64_C(10000000000), UINT64_C(100000000000), UINT64_C(1000000000000),
      UINT64_C(10000000000000), UINT64_C(100000000000000), UINT64_C(1000000000000000),
      UINT64_C(10000000000000000), UINT64_C(100000000000000000),
      UINT64_C(1000000000000000000), UINT64_C(10000000000000000000)};
  /* from the bit length (x 1233 / 4096 ~ log10(2)), corrected by one comparison */
  int bits = 64 - __builtin_clzll(u | 1);
  int t = (bits * 1233) >> 12;
  return t + 1 - (u < pow10[t]);
}

/* Writes u's digits ending just before `end` (no NUL). Eight digits at a time are split
 * off in 64-bit arithmetic, and written in cheaper 32-bit arithmetic. */
static void write_digits_backwards(char *end, uint64_t u) {
  while (u >= 100000000) {
    uint32_t low = (uint32_t)(u % 100000000);
    u /= 100000000;
    for (int k = 0; k < 4; k++) {
      unsigned d = (low % 100) * 2;
      low /= 100;
      *--end = digit_pairs[d + 1];
      *--end = digit_pairs[d];
    }
  }
  uint32_t w = (uint32_t)u;
  while (w >= 100) {
    unsigned d = (w % 100) * 2;
    w /= 100;
    *--end = digit_pairs[d + 1];
    *--end = digit_pairs[d];
  }
  if (w >= 10) {
    *--end = digit_pairs[w * 2 + 1];
    *--end = digit_pairs[w * 2];
  } else {
    *--end = (char)('0' + w);
  }
}

size_t s3sink_text_int(char *buf, int64_t v) {
  size_t len = 0;
  /* negate in unsigned arithmetic so INT64_MIN works */
  uint64_t u = (uint64_t)v;
  if (v < 0) {
    buf[len++] = '-';
    u = (uint64_t)0 - u;
  }
  len += (size_t)decimal_digits(u);
  write_digits_backwards(buf + len, u);
  buf[len] = '\0';
  return len;
}

/* ----------------------------------------------------------------------------------------
 * Floats: shortest round-trip digits
 *
 * The digits are those of the shortest decimal that reads back as the same double, and of
 * those the closest to it: what Python's repr, Rust's {:?} and serde_json all print. They
 * are computed with integer arithmetic only (no printf, no strtod, no locale), by the
 * Schubfach method (R. Giulietti, "The Schubfach way to render doubles", 2020): v = c x 2^q
 * is scaled by a 126-bit approximation of 10^-k (pow10_table.h) so that the digits of
 * v x 10^-k are an integer s of 16 or 17 digits, and the ends of v's rounding interval are
 * scaled the same way. The interval holds at most one multiple of 10 near s; if it does,
 * that one is the shortest, else s or s + 1, whichever is closer.
 * -------------------------------------------------------------------------------------- */

#include "pow10_table.h"

/* floor(log10(2^e)), floor(log10(3/4 x 2^e)) and floor(log2(10^e)) over the exponents of
 * doubles, by multiplication and shift (>> of a negative number floors in GCC and Clang) */
_Static_assert((-3 >> 1) == -2, "the float writer needs an arithmetic right shift");
static int floor_log10_pow2(int e) { return (int)(((int64_t)e * 661971961083) >> 41); }
static int floor_log10_three_quarters_pow2(int e) {
  return (int)(((int64_t)e * 661971961083 - 274743187321) >> 41);
}
static int floor_log2_pow10(int e) { return (int)(((int64_t)e * 913124641741) >> 38); }

/* The high and low 64 bits of a x b. */
static void mul_64x64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
#ifdef __SIZEOF_INT128__
  unsigned __int128 p = (unsigned __int128)a * b;
  *hi = (uint64_t)(p >> 64);
  *lo = (uint64_t)p;
#else
  uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
  uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
  *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
  *lo = (mid << 32) | (uint32_t)ll;
#endif
}

/* g x cp / 2^127 rounded to odd: its integer part, with the lowest bit set when a fraction
 * was dropped. g = g[0] x 2^64 + g[1] < 2^126 and cp < 2^61, so the result is < 2^60.
 * The fraction is judged on its upper 63 bits only: g exceeds 10^-k x 2^-r by less than
 * one, which adds less than cp to the product, all of it below those bits, so where the
 * exact product is an integer (a tie, or an end of the interval) this one is too. */
static uint64_t scale_round_odd(const uint64_t g[2], uint64_t cp) {
  uint64_t hh, hl, lh, ll;
  mul_64x64(g[0], cp, &hh, &hl);
  mul_64x64(g[1], cp, &lh, &ll);
  (void)ll;
  uint64_t mid = hl + lh; /* g x cp = hh:mid:ll (192 bits), with mid's carry into hh */
  hh += mid < hl;
  uint64_t integer = (hh << 1) | (mid >> 63);
  bool fraction = (mid & ~(UINT64_C(1) << 63)) != 0;
  return integer | fraction;
}

/* The shortest decimal of v = c x 2^q (c > 0): *digits x 10^*exp10, trailing zeros not yet
 * removed. Of two equally close candidates the even one is taken unless `ties_up`. */
static void shortest_decimal(uint64_t c, int q, bool ties_up, uint64_t *digits, int *exp10) {
  const uint64_t c_min = UINT64_C(1) << 52;
  const int q_min = -1074;
  int dk = 0;
  if (c < 3) { /* the two smallest subnormals: scale by ten so s keeps enough digits */
    c *= 10;
    dk = -1;
  }
  bool open = c & 1; /* an odd c: the interval's ends round to the neighbours, not to v */
  uint64_t cb = c << 2, cbr = cb + 2, cbl;
  int k;
  if (c != c_min || q == q_min) {
    cbl = cb - 2;
    k = floor_log10_pow2(q);
  } else { /* at a power of two the gap below v is half the gap above */
    cbl = cb - 1;
    k = floor_log10_three_quarters_pow2(q);
  }
  const uint64_t *g = POW10_TABLE[k - POW10_K_MIN];
  int h = q + floor_log2_pow10(-k) + 2; /* 1..4 */
  uint64_t vb = scale_round_odd(g, cb << h), vbl = scale_round_odd(g, cbl << h),
           vbr = scale_round_odd(g, cbr << h);
  /* 4 x v x 10^-k and the interval's ends, to a quarter unit; s = v x 10^-k, truncated */
  uint64_t s = vb >> 2;
  if (s >= 10) { /* one digit fewer: the multiple of 10 below s or the one above */
    uint64_t below = s / 10 * 10, above = below + 10;
    bool below_in = vbl + open <= below << 2, above_in = (above << 2) + open <= vbr;
    if (below_in != above_in) {
      *digits = below_in ? below : above;
      *exp10 = k + dk;
      return;
    }
  }
  uint64_t t = s + 1;
  bool s_in = vbl + open <= s << 2, t_in = (t << 2) + open <= vbr;
  if (s_in != t_in) {
    *digits = s_in ? s : t;
  } else { /* both read back: the closer one, and on a tie the even one or the upper one */
    int64_t cmp = (int64_t)(vb - ((s + t) << 1));
    *digits = cmp < 0 || (cmp == 0 && !ties_up && !(s & 1)) ? s : t;
  }
  *exp10 = k + dk;
}

/* Divides *n (> 0, at most 17 digits) by the largest power of ten that divides it, and
 * returns that power's exponent. n is divisible by 10^k exactly when n x 5^-k (mod 2^64, 5 is
 * invertible there) rotated right by k is at most (2^64 - 1) / 10^k, and that is then the
 * quotient: a multiplication and a comparison per test, no division. 10^8, 10^4, 10^2 and
 * 10 are tried in turn; 10^8 twice, as digits can end in 16 zeros. */
static int drop_trailing_zeros(uint64_t *n) {
  static const struct { uint64_t inverse, bound; int k; } tests[] = {
      {UINT64_C(0xc767074b22e90e21), UINT64_MAX / UINT64_C(100000000), 8}, /* 5^-8 */
      {UINT64_C(0xc767074b22e90e21), UINT64_MAX / UINT64_C(100000000), 8},
      {UINT64_C(0xd288ce703afb7e91), UINT64_MAX / 10000, 4},                /* 5^-4 */
      {UINT64_C(0x8f5c28f5c28f5c29), UINT64_MAX / 100, 2},                  /* 5^-2 */
      {UINT64_C(0xcccccccccccccccd), UINT64_MAX / 10, 1},                   /* 5^-1 */
  };
  int e = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    uint64_t x = *n * tests[i].inverse;
    uint64_t q = (x >> tests[i].k) | (x << (64 - tests[i].k));
    if (q <= tests[i].bound) {
      *n = q;
      e += tests[i].k;
    }
  }
  return e;
}

/* v finite and > 0: its shortest round-trip digits as an integer without trailing zeros,
 * *ndigits of them, so that v ~ d1.d2...dn x 10^*exp10. */
static uint64_t shortest_digits(double v, bool ties_up, int *ndigits, int *exp10) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  uint64_t fraction = bits & ((UINT64_C(1) << 52) - 1);
  int biased = (int)(bits >> 52) & 0x7ff;
  uint64_t c, digits;
  int q, e;
  if (biased == 0) { /* subnormal */
    c = fraction;
    q = -1074;
  } else {
    c = fraction | (UINT64_C(1) << 52);
    q = biased - 1075;
  }
  if (q < 0 && q > -53 && (c & ((UINT64_C(1) << -q) - 1)) == 0) {
    digits = c >> -q; /* an integer below 2^53: its own digits, exactly */
    e = 0;
  } else {
    shortest_decimal(c, q, ties_up, &digits, &e);
  }
  e += drop_trailing_zeros(&digits);
  *ndigits = decimal_digits(digits);
  *exp10 = e + *ndigits - 1;
  return digits;
}

/* Writes a finite, non-zero v with fixed notation for lo <= exp10 <= 15 and exponent
 * notation otherwise, with a '+' before positive exponents when `plus`. The digits are
 * written once, in place; a point inside them moves the digits after it by one. */
static size_t write_finite(char *buf, double v, int lo, bool plus, bool ties_up) {
  int n, e;
  size_t len = 0;
  if (signbit(v)) {
    buf[len++] = '-';
    v = -v;
  }
  uint64_t digits = shortest_digits(v, ties_up, &n, &e);
  if (e >= lo && e <= 15) {
    if (e >= n - 1) { /* ddd000.0 */
      write_digits_backwards(buf + len + n, digits);
      len += (size_t)n;
      memset(buf + len, '0', (size_t)(e + 1 - n));
      len += (size_t)(e + 1 - n);
      memcpy(buf + len, ".0", 2);
      len += 2;
    } else if (e >= 0) { /* ddd.ddd */
      char *p = buf + len;
      write_digits_backwards(p + n, digits);
      memmove(p + e + 2, p + e + 1, (size_t)(n - e - 1));
      p[e + 1] = '.';
      len += (size_t)n + 1;
    } else { /* 0.000ddd */
      memcpy(buf + len, "0.", 2);
      len += 2;
      memset(buf + len, '0', (size_t)(-e - 1));
      len += (size_t)(-e - 1);
      write_digits_backwards(buf + len + n, digits);
      len += (size_t)n;
    }
  } else { /* d.ddde[+|-]x: the digits go one place right, the first then moves back */
    char *p = buf + len;
    write_digits_backwards(p + 1 + n, digits);
    p[0] = p[1];
    if (n > 1) {
      p[1] = '.';
      len += (size_t)n + 1;
    } else {
      len += 1;
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
