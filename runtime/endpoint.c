/* endpoint.c - bucket, region and endpoint URL checks, and request targets (see
 * endpoint.h). libcurl's URL parser splits the endpoint; the rules on top of it keep what
 * an S3 endpoint may be: http or https, a host and a port, nothing else, so that a typo
 * (a path, a query, user information) is refused rather than silently dropped. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "endpoint.h"
#include "uri.h"

/* Letters, digits, '.', '-', '_': bucket, region and host names (no IDN, no escapes). */
static bool name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '.' || ch == '-' || ch == '_';
}

static bool all_name_chars(const char *s) {
  for (; *s; s++)
    if (!name_char(*s)) return false;
  return true;
}

int endpoint_check_names(const char *bucket, const char *region, s3sink_err *err) {
  if (!bucket || !*bucket) return err_set(err, S3SINK_EINVAL, "bucket is required");
  /* Only what is safe in a path and a host name: S3-compatible stores differ in the rest,
   * and a server's InvalidBucketName says what it wants. */
  if (strlen(bucket) > 255 || !all_name_chars(bucket))
    return err_set(err, S3SINK_EINVAL,
                   "bucket name '%.255s' is invalid: use letters, digits, '.', '-' (3 to 63 "
                   "characters for S3)", bucket);
  if (!*region || strlen(region) > 63 || !all_name_chars(region))
    return err_set(err, S3SINK_EINVAL, "region '%.63s' is invalid, e.g. \"us-east-1\"", region);
  return S3SINK_OK;
}

/* The message for a URL libcurl refused. */
static int refused(const char *url, CURLUcode uc, s3sink_err *err) {
  switch (uc) {
  case CURLUE_OUT_OF_MEMORY: return err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
  case CURLUE_UNSUPPORTED_SCHEME:
  case CURLUE_BAD_SCHEME:
    return err_set(err, S3SINK_EINVAL,
                   "endpoint '%s' has an unsupported scheme: use http:// or https://", url);
  case CURLUE_NO_HOST: return err_set(err, S3SINK_EINVAL, "endpoint '%s' has no host", url);
  case CURLUE_BAD_HOSTNAME:
    return err_set(err, S3SINK_EINVAL, "endpoint '%s' has an invalid host name", url);
  case CURLUE_BAD_IPV6:
    if (strchr(url, '[') && !strchr(url, ']'))
      return err_set(err, S3SINK_EINVAL, "endpoint '%s' has an unterminated IPv6 address", url);
    return err_set(err, S3SINK_EINVAL, "endpoint '%s' has an invalid IPv6 address", url);
  case CURLUE_BAD_PORT_NUMBER:
    return err_set(err, S3SINK_EINVAL, "endpoint '%s' has an invalid port", url);
  case CURLUE_BAD_LOGIN:
  case CURLUE_BAD_USER:
  case CURLUE_BAD_PASSWORD:
    return err_set(err, S3SINK_EINVAL,
                   "endpoint must not hold user information ('user@'); pass credentials "
                   "as access_key and secret_key");
  case CURLUE_BAD_PATH:
  case CURLUE_BAD_QUERY:
  case CURLUE_BAD_FRAGMENT:
    return err_set(err, S3SINK_EINVAL,
                   "endpoint '%s' must be scheme://host[:port] without a path or query", url);
  default: return err_set(err, S3SINK_EINVAL, "endpoint '%s' is malformed", url);
  }
}

/* Whether libcurl has the part (an empty one counts). */
static bool has_part(CURLU *u, CURLUPart part) {
  char *v = NULL;
  CURLUcode uc = curl_url_get(u, part, &v, 0);
  curl_free(v);
  return uc == CURLUE_OK;
}

/* libcurl forgives what is more likely a typo here: an empty port or fragment, a missing
 * slash ("http:/host"). So the shape is checked on the text itself: after "scheme://" (if
 * any) the authority, then at most a '/'. */
static int check_shape(const char *url, s3sink_err *err) {
  const char *sep = strstr(url, "://");
  const char *auth = sep ? sep + 3 : url;
  size_t n = strcspn(auth, "/?#");
  if (auth[n] && strcmp(auth + n, "/") != 0) return refused(url, CURLUE_BAD_PATH, err);
  if (n && auth[n - 1] == ':') return refused(url, CURLUE_BAD_PORT_NUMBER, err);
  return S3SINK_OK;
}

/* Splits url into scheme, host (IPv6 in brackets) and port (0: the scheme's default). */
static int split(CURLU *u, const char *url, char **scheme, char **host, long *port,
                 s3sink_err *err) {
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_DEFAULT_SCHEME | CURLU_NON_SUPPORT_SCHEME);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, scheme, 0);
  if (uc != CURLUE_OK) return refused(url, uc, err);
  if (strcmp(*scheme, "http") != 0 && strcmp(*scheme, "https") != 0)
    return refused(url, CURLUE_UNSUPPORTED_SCHEME, err);
  int rc = check_shape(url, err);
  if (rc) return rc;
  if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
      has_part(u, CURLUPART_OPTIONS))
    return refused(url, CURLUE_BAD_LOGIN, err);
  if ((uc = curl_url_get(u, CURLUPART_HOST, host, 0)) != CURLUE_OK) return refused(url, uc, err);
  if (**host == '[') {
    if (has_part(u, CURLUPART_ZONEID)) return refused(url, CURLUE_BAD_IPV6, err);
  } else if (!**host) {
    return refused(url, CURLUE_NO_HOST, err);
  } else if (!all_name_chars(*host)) {
    return refused(url, CURLUE_BAD_HOSTNAME, err);
  }
  char *digits = NULL;
  uc = curl_url_get(u, CURLUPART_PORT, &digits, 0);
  *port = uc == CURLUE_OK ? strtol(digits, NULL, 10) : 0;
  curl_free(digits);
  if (uc != CURLUE_OK && uc != CURLUE_NO_PORT) return refused(url, uc, err);
  if (uc == CURLUE_OK && *port < 1) return refused(url, CURLUE_BAD_PORT_NUMBER, err);
  return S3SINK_OK;
}

/* The one way, in every binding's terms, to switch to path-style addressing: the messages
 * about addressing all end with it. */
#define PATH_STYLE_FIX                                                                  \
  "use path-style addressing: virtual_hosted = false (in Pathway's AwsS3Settings or " \
  "MinIOSettings: with_path_style=True)"

/* An IPv4 address, or an IPv6 one in brackets (as libcurl gives the host). */
static bool is_ip_literal(const char *host) {
  unsigned char addr[4];
  return host[0] == '[' || inet_pton(AF_INET, host, addr) == 1;
}

int endpoint_parse(endpoint *e, const char *url, const char *region, const char *bucket,
                   bool virtual_hosted, s3sink_err *err) {
  memset(e, 0, sizeof *e);
  e->virtual_hosted = virtual_hosted;
  char aws[128];
  if (!url || !*url) {
    snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
    url = aws;
  }
  CURLU *u = curl_url();
  if (!u) return err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
  char *scheme = NULL, *host = NULL;
  long port = 0;
  int rc = split(u, url, &scheme, &host, &port, err);
  /* A virtual-hosted request goes to bucket.host, which an IP address cannot have: refused
   * here rather than failing to resolve at every request (or silently going path-style:
   * Pathway's readers refuse the same settings). */
  if (rc == S3SINK_OK && virtual_hosted && is_ip_literal(host))
    rc = err_set(err, S3SINK_EINVAL,
                 "endpoint '%s' is an IP address, which virtual-hosted addressing cannot use "
                 "(requests would go to host '%s.%s'): " PATH_STYLE_FIX,
                 url, bucket, host);
  if (rc == S3SINK_OK) {
    bool https = strcmp(scheme, "https") == 0;
    char portbuf[8] = "";
    if (port && port != (https ? 443 : 80)) snprintf(portbuf, sizeof portbuf, ":%ld", port);
    bytebuf h, o;
    bytebuf_init(&h, 4096);
    bytebuf_init(&o, 4096);
    bool ok = (!virtual_hosted || (bytebuf_append_str(&h, bucket) && bytebuf_append_str(&h, "."))) &&
              bytebuf_append_str(&h, host) && bytebuf_append_str(&h, portbuf) &&
              bytebuf_terminate(&h) && bytebuf_append_str(&o, scheme) &&
              bytebuf_append_str(&o, "://") && bytebuf_append_str(&o, host) &&
              bytebuf_append_str(&o, portbuf) && bytebuf_terminate(&o);
    e->scheme = strdup(https ? "https" : "http");
    e->host = h.data;
    e->origin = o.data;
    if (!ok || !e->scheme) rc = err_set(err, S3SINK_ENOMEM, "s3client: out of memory");
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return rc;
}

void endpoint_addressing_hint(const endpoint *e, char *buf, size_t cap) {
  if (!cap) return;
  buf[0] = '\0';
  if (e->virtual_hosted)
    snprintf(buf, cap,
             "; virtual-hosted addressing sends requests to host '%s', which needs a server "
             "that serves buckets as subdomains (MinIO: only with MINIO_DOMAIN set); "
             "otherwise " PATH_STYLE_FIX,
             e->host);
}

void endpoint_free(endpoint *e) {
  free(e->scheme);
  free(e->host);
  free(e->origin);
  memset(e, 0, sizeof *e);
}

bool endpoint_target(const endpoint *e, const char *bucket, const char *key, const char *query,
                     bytebuf *path, bytebuf *url) {
  bool ok = true;
  if (!e->virtual_hosted) ok = bytebuf_append_str(path, "/") && bytebuf_append_str(path, bucket);
  if (key)
    ok = ok && bytebuf_append_str(path, "/") && uri_encode(path, key, strlen(key), true);
  else if (e->virtual_hosted)
    ok = ok && bytebuf_append_str(path, "/");
  ok = ok && bytebuf_terminate(path) && bytebuf_append_str(url, e->scheme) &&
       bytebuf_append_str(url, "://") && bytebuf_append_str(url, e->host) &&
       bytebuf_append_str(url, path->data);
  if (query && *query) ok = ok && bytebuf_append_str(url, "?") && bytebuf_append_str(url, query);
  return ok && bytebuf_terminate(url);
}
