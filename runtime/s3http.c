/* s3http.c - one libcurl easy handle: options, body and header callbacks, one exchange at
 * a time (see s3http.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ascii.h"
#include "s3http.h"

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  s3http *h = ud;
  size_t len = size * n;
  if (!bytebuf_append(&h->resp, p, len)) { /* out of memory, or over the response cap */
    h->resp_oom = true;
    return 0;
  }
  return len;
}

static void header_value(const char *p, size_t len, size_t name_len, char *dst, size_t cap) {
  const char *v = p + name_len;
  const char *e = p + len;
  while (v < e && (*v == ' ' || *v == '\t')) v++;
  while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
  size_t n = (size_t)(e - v);
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  s3http *h = ud;
  s3http_reply *r = &h->got;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after a 1xx) */
    memset(r, 0, sizeof *r);
  } else if (len > 5 && ascii_ieq_n(p, "date:", 5)) {
    header_value(p, len, 5, r->date, sizeof r->date);
  } else if (len > 17 && ascii_ieq_n(p, "x-amz-request-id:", 17)) {
    header_value(p, len, 17, r->request_id, sizeof r->request_id);
  } else if (len > 5 && ascii_ieq_n(p, "etag:", 5)) {
    header_value(p, len, 5, r->etag, sizeof r->etag);
  } else if (len > 20 && ascii_ieq_n(p, "x-amz-bucket-region:", 20)) {
    header_value(p, len, 20, r->bucket_region, sizeof r->bucket_region);
  } else if (len > sizeof S3HTTP_IDENTITY_HEADER &&
             ascii_ieq_n(p, S3HTTP_IDENTITY_HEADER ":", sizeof S3HTTP_IDENTITY_HEADER)) {
    header_value(p, len, sizeof S3HTTP_IDENTITY_HEADER, r->identity, sizeof r->identity);
  }
  return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud) {
  s3http *h = ud;
  size_t room = size * n, left = h->up.len - h->up_pos;
  if (room > left) room = left;
  if (room && !s3body_read(&h->up, h->up_pos, p, room)) {
    h->up_errno = errno;
    return CURL_READFUNC_ABORT;
  }
  h->up_pos += room;
  return room;
}

/* libcurl rewinds the body when it sends a request again (on a kept-alive connection
 * that the server had closed meanwhile). */
static int on_seek(void *ud, curl_off_t offset, int origin) {
  s3http *h = ud;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > h->up.len)
    return CURL_SEEKFUNC_CANTSEEK;
  h->up_pos = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

int s3http_init(s3http *h, const s3http_options *o, s3sink_err *err) {
  memset(h, 0, sizeof *h);
  bytebuf_init(&h->resp, SIZE_MAX);
  h->up.fd = -1;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return err_set(err, S3SINK_EHTTP, "libcurl failed to initialize");
  h->curl = curl_easy_init();
  if (!h->curl) {
    curl_global_cleanup();
    return err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
  }
  CURL *c = h->curl;
  CURLcode cc = CURLE_OK;
#define SETOPT(opt, val) \
  if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val)
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  SETOPT(CURLOPT_TIMEOUT_MS, o->request_timeout_ms);
  SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, h);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, h);
  SETOPT(CURLOPT_READFUNCTION, on_read);
  /* objects are MiBs: copy and send them 1 MiB at a time instead of libcurl's 64 KiB */
  SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
  SETOPT(CURLOPT_READDATA, h);
  SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
  SETOPT(CURLOPT_SEEKDATA, h);
  SETOPT(CURLOPT_USERAGENT, o->user_agent);
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);  /* a redirect would need a new signature */
  SETOPT(CURLOPT_PATH_AS_IS, 1L);      /* keys may hold "/../" or "//" */
  SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SETOPT(CURLOPT_SSL_VERIFYPEER, o->insecure_tls ? 0L : 1L);
  SETOPT(CURLOPT_SSL_VERIFYHOST, o->insecure_tls ? 0L : 2L);
  if (o->ca_file && *o->ca_file) SETOPT(CURLOPT_CAINFO, o->ca_file);
#undef SETOPT
  if (cc != CURLE_OK)
    return err_set(err, cc == CURLE_OUT_OF_MEMORY ? S3SINK_ENOMEM : S3SINK_EINVAL,
                   "libcurl rejected an option: %s", curl_easy_strerror(cc));
  return S3SINK_OK;
}

void s3http_cleanup(s3http *h) {
  if (h->curl) {
    curl_easy_cleanup(h->curl);
    curl_global_cleanup();
  }
  curl_slist_free_all(h->headers);
  bytebuf_free(&h->resp);
  h->curl = NULL;
  h->headers = NULL;
}

bool s3http_set_headers(s3http *h, const s3sink_header *hdrs, size_t n) {
  curl_slist_free_all(h->headers);
  h->headers = NULL;
  char line[8192];
  for (size_t i = 0; i <= n; i++) {
    /* "Name;" is how libcurl sends a header with an empty value ("Name:" removes it) */
    int len = i == n ? snprintf(line, sizeof line, "Expect:") /* no 100-continue round trip */
              : hdrs[i].value[0] ? snprintf(line, sizeof line, "%s: %s", hdrs[i].name, hdrs[i].value)
                                 : snprintf(line, sizeof line, "%s;", hdrs[i].name);
    struct curl_slist *l = len < 0 || (size_t)len >= sizeof line ? NULL
                                                                 : curl_slist_append(h->headers, line);
    if (!l) {
      curl_slist_free_all(h->headers);
      h->headers = NULL;
      return false;
    }
    h->headers = l;
  }
  return true;
}

static void set_method(CURL *c, const char *method, size_t len) {
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
  curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 0L);
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "PUT") == 0) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  } else if (strcmp(method, "DELETE") == 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
  }
}

CURLcode s3http_exchange(s3http *h, const char *method, const char *url, const s3body *body,
                         size_t max_response, long *status) {
  *status = 0;
  set_method(h->curl, method, body->len);
  curl_easy_setopt(h->curl, CURLOPT_URL, url);
  curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
  h->up = *body;
  h->up_pos = 0;
  h->up_errno = 0;
  h->resp.len = 0;
  h->resp.max = max_response;
  h->resp_oom = false;
  h->errbuf[0] = '\0';
  memset(&h->got, 0, sizeof h->got);
  CURLcode cc = curl_easy_perform(h->curl);
  curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(h->headers);
  h->headers = NULL;
  h->up = (s3body){.data = NULL, .fd = -1, .len = 0};
  h->up_pos = 0;
  if (cc == CURLE_OK) curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);
  return cc;
}
