/* uri.c - percent-encoding shared by the signer and the S3 client (see uri.h). */
#include "uri.h"

bool uri_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

bool uri_encode(bytebuf *b, const char *p, size_t n, bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  size_t run = 0; /* bytes before i that are kept as they are, appended in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (uri_unreserved(c) || (keep_slash && c == '/')) {
      run++;
      continue;
    }
    char e[3] = {'%', hex[c >> 4], hex[c & 15]};
    if (!bytebuf_append(b, p + i - run, run) || !bytebuf_append(b, e, 3)) return false;
    run = 0;
  }
  return bytebuf_append(b, p + n - run, run);
}
