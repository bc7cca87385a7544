/* awsconfig.c - the AWS environment variables and shared files (see awsconfig.h).
 *
 * The files are INI as the AWS tools read them: "[section]" headers, "key = value" (or
 * "key: value") lines with the key lowercased, whole-line comments ('#' or ';'), and
 * nested settings: a key with an empty value followed by indented "sub = value" lines
 * (kept as "key.sub"). Lines before the first section and continuation lines of
 * non-empty values are ignored. */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "awsconfig.h"

#define MAX_FILE_BYTES ((size_t)4 << 20) /* shared files are small; a larger one is not */

/* ------------------------------------------------------------------------------------ */
/* INI files                                                                            */

typedef struct ini_entry {
  char *section, *key, *value;
} ini_entry;

struct ini {
  ini_entry *v;
  size_t n, cap; /* no index: the files hold a handful of entries */
};

static void ini_free(ini *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++) {
    free(f->v[i].section);
    free(f->v[i].key);
    free(f->v[i].value);
  }
  free(f->v);
  free(f);
}

static char *dup_range(const char *s, const char *e) {
  while (s < e && isspace((unsigned char)*s)) s++;
  while (e > s && isspace((unsigned char)e[-1])) e--;
  char *p = malloc((size_t)(e - s) + 1);
  if (p) {
    memcpy(p, s, (size_t)(e - s));
    p[e - s] = '\0';
  }
  return p;
}

/* "[profile   dev ]" -> "profile dev": the kind and the name, one space apart. */
static char *section_name(const char *s, const char *e) {
  char *raw = dup_range(s, e);
  if (!raw) return NULL;
  char *sp = raw;
  while (*sp && !isspace((unsigned char)*sp)) sp++;
  if (*sp) {
    char *name = sp;
    while (isspace((unsigned char)*name)) name++;
    memmove(sp + 1, name, strlen(name) + 1);
    *sp = ' ';
  }
  return raw;
}

static bool ini_add(ini *f, const char *section, const char *parent, char *key, char *value) {
  char *sec = strdup(section), *full = NULL;
  if (key && parent) {
    size_t n = strlen(parent) + 1 + strlen(key) + 1;
    if ((full = malloc(n))) snprintf(full, n, "%s.%s", parent, key);
  }
  if (parent) {
    free(key);
    key = full;
  }
  if (f->n == f->cap && key && value && sec) {
    size_t ncap = f->cap ? 2 * f->cap : 16;
    ini_entry *nv = realloc(f->v, ncap * sizeof *nv);
    if (nv) {
      f->v = nv;
      f->cap = ncap;
    }
  }
  if (!key || !value || !sec || f->n == f->cap) {
    free(key);
    free(value);
    free(sec);
    return false;
  }
  for (char *p = key; *p; p++) *p = (char)tolower((unsigned char)*p);
  f->v[f->n++] = (ini_entry){sec, key, value};
  return true;
}

static ini *ini_parse(const char *text, size_t len) {
  ini *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  char *section = NULL, *parent = NULL;
  const char *p = text, *end = text + len;
  bool ok = true;
  while (ok && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *s = p;
    p = eol < end ? eol + 1 : end;
    bool indented = s < eol && (*s == ' ' || *s == '\t');
    const char *t = s;
    while (t < eol && isspace((unsigned char)*t)) t++;
    if (t == eol || *t == '#' || *t == ';') {
      if (t == eol) {
        free(parent); /* a blank line ends a nested block */
        parent = NULL;
      }
      continue;
    }
    if (!indented && *t == '[') {
      const char *close = memchr(t, ']', (size_t)(eol - t));
      free(parent);
      parent = NULL;
      free(section);
      section = close ? section_name(t + 1, close) : NULL;
      continue;
    }
    if (!section) continue;
    const char *eq = memchr(t, '=', (size_t)(eol - t));
    const char *colon = memchr(t, ':', (size_t)(eol - t));
    if (!eq || (colon && colon < eq)) eq = colon;
    if (!eq) continue;
    if (indented && !parent) continue; /* a continuation line: not read */
    if (!indented) {
      free(parent);
      parent = NULL;
    }
    char *key = dup_range(t, eq), *value = dup_range(eq + 1, eol);
    if (!indented && key && value && !*value) parent = strdup(key);
    ok = ini_add(f, section, indented ? parent : NULL, key, value);
  }
  free(section);
  free(parent);
  if (!ok) {
    ini_free(f);
    return NULL;
  }
  return f;
}

static const char *ini_get(const ini *f, const char *section, const char *key) {
  if (!f) return NULL;
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->v[i].section, section) == 0 && strcmp(f->v[i].key, key) == 0)
      return f->v[i].value;
  return NULL;
}

static bool ini_has_section(const ini *f, const char *section) {
  if (!f) return false;
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->v[i].section, section) == 0) return true;
  return false;
}

/* Reads path into a parsed ini; a missing or unreadable file is NULL (the AWS tools
 * ignore it too). -1 only when out of memory. */
static int ini_load(const char *path, ini **out) {
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) return 0;
  char *buf = malloc(MAX_FILE_BYTES);
  if (!buf) {
    fclose(fp);
    return -1;
  }
  size_t n = fread(buf, 1, MAX_FILE_BYTES, fp);
  bool whole = feof(fp) && !ferror(fp);
  fclose(fp);
  int rc = 0;
  if (whole && !(*out = ini_parse(buf, n))) rc = -1;
  free(buf);
  return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Environment and paths                                                                */

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

static bool env_true(const char *name) {
  const char *v = env(name);
  return v && strcasecmp(v, "true") == 0;
}

/* The home folder: $HOME, else the password database's. */
static char *home_dir(void) {
  const char *h = env("HOME");
  if (h) return strdup(h);
  struct passwd pw, *res = NULL;
  char buf[4096];
  if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res && res->pw_dir)
    return strdup(res->pw_dir);
  return strdup("");
}

/* `given` (with a leading "~/" expanded), or home/dflt. */
static char *file_path(const char *given, const char *home, const char *dflt) {
  const char *rest = given;
  if (given && strncmp(given, "~/", 2) == 0) rest = given + 1;
  else if (given) return strdup(given);
  else rest = dflt;
  size_t n = strlen(home) + strlen(rest) + 1;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s%s", home, rest);
  return p;
}

int awsconfig_load(awsconfig *a, const char *profile_option, s3sink_err *err) {
  memset(a, 0, sizeof *a);
  const char *name = profile_option;
  if (name) a->profile_by = "the profile option";
  else if ((name = env("AWS_PROFILE"))) a->profile_by = "AWS_PROFILE";
  else if ((name = env("AWS_DEFAULT_PROFILE"))) a->profile_by = "AWS_DEFAULT_PROFILE";
  else name = "default";
  char *home = home_dir();
  a->profile = strdup(name);
  a->credentials_path = home ? file_path(env("AWS_SHARED_CREDENTIALS_FILE"), home, "/.aws/credentials") : NULL;
  a->config_path = home ? file_path(env("AWS_CONFIG_FILE"), home, "/.aws/config") : NULL;
  free(home);
  if (!a->profile || !a->credentials_path || !a->config_path ||
      ini_load(a->credentials_path, &a->credentials) < 0 || ini_load(a->config_path, &a->config) < 0)
    return err_set(err, S3SINK_ENOMEM, "out of memory reading the AWS shared files");
  return S3SINK_OK;
}

void awsconfig_free(awsconfig *a) {
  free(a->profile);
  free(a->credentials_path);
  free(a->config_path);
  ini_free(a->credentials);
  ini_free(a->config);
  memset(a, 0, sizeof *a);
}

/* The profile's section in the config file: "[default]" or "[profile name]" ("[profile
 * default]" too, which the AWS tools prefer when both exist). */
static const char *config_section(const awsconfig *a, char *buf, size_t cap) {
  snprintf(buf, cap, "profile %s", a->profile);
  if (ini_has_section(a->config, buf) || strcmp(a->profile, "default") != 0) return buf;
  return "default";
}

const char *awsconfig_get(const awsconfig *a, const char *key) {
  char sec[512];
  return ini_get(a->config, config_section(a, sec, sizeof sec), key);
}

const char *awsconfig_endpoint(const awsconfig *a, char *by, size_t cap) {
  const char *v;
  const char *ignore = awsconfig_get(a, "ignore_configured_endpoint_urls");
  if (env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") || (ignore && strcasecmp(ignore, "true") == 0))
    return NULL;
  if ((v = env("AWS_ENDPOINT_URL_S3"))) {
    snprintf(by, cap, "AWS_ENDPOINT_URL_S3");
    return v;
  }
  if ((v = env("AWS_ENDPOINT_URL"))) {
    snprintf(by, cap, "AWS_ENDPOINT_URL");
    return v;
  }
  const char *services = awsconfig_get(a, "services");
  if (services) {
    char sec[512];
    snprintf(sec, sizeof sec, "services %s", services);
    if ((v = ini_get(a->config, sec, "s3.endpoint_url")) && *v) {
      snprintf(by, cap, "the s3 endpoint_url of [services %s] in %s", services, a->config_path);
      return v;
    }
  }
  if ((v = awsconfig_get(a, "endpoint_url")) && *v) {
    snprintf(by, cap, "the endpoint_url of profile '%s' in %s", a->profile, a->config_path);
    return v;
  }
  return NULL;
}

const char *awsconfig_region(const awsconfig *a, char *by, size_t cap) {
  const char *v;
  if ((v = env("AWS_REGION"))) {
    snprintf(by, cap, "AWS_REGION");
    return v;
  }
  if ((v = env("AWS_DEFAULT_REGION"))) {
    snprintf(by, cap, "AWS_DEFAULT_REGION");
    return v;
  }
  if ((v = awsconfig_get(a, "region")) && *v) {
    snprintf(by, cap, "the region of profile '%s' in %s", a->profile, a->config_path);
    return v;
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Credentials                                                                          */

/* Keys of a section: both, or an error for half a pair; none is no error. */
static int section_keys(const ini *f, const char *section, const char *what,
                        awsconfig_keys *out, s3sink_err *err) {
  const char *ak = ini_get(f, section, "aws_access_key_id");
  const char *sk = ini_get(f, section, "aws_secret_access_key");
  const char *tok = ini_get(f, section, "aws_session_token");
  if (!tok) tok = ini_get(f, section, "aws_security_token"); /* the older name */
  if (ak && !*ak) ak = NULL;
  if (sk && !*sk) sk = NULL;
  if (!ak && !sk) return S3SINK_OK;
  if (!ak || !sk)
    return err_set(err, S3SINK_EINVAL, "%s has %s but no %s: give both", what,
                   ak ? "aws_access_key_id" : "aws_secret_access_key",
                   ak ? "aws_secret_access_key" : "aws_access_key_id");
  out->access_key = ak;
  out->secret_key = sk;
  out->session_token = tok && *tok ? tok : NULL;
  snprintf(out->source, sizeof out->source, "%s", what);
  return S3SINK_OK;
}

/* Profile settings that make the AWS tools fetch credentials in ways this runtime does
 * not: the profile then has no credentials here, and saying so beats "none found". */
static const char *const FETCHED[] = {"credential_process", "role_arn", "sso_session",
                                      "sso_start_url", "web_identity_token_file", NULL};

int awsconfig_credentials(const awsconfig *a, awsconfig_keys *out, s3sink_err *err) {
  memset(out, 0, sizeof *out);
  if (!a->profile_by || strcmp(a->profile_by, "the profile option") != 0) {
    const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
    if (ak && sk) {
      out->access_key = ak;
      out->secret_key = sk;
      out->session_token = env("AWS_SESSION_TOKEN");
      snprintf(out->source, sizeof out->source, "the environment (AWS_ACCESS_KEY_ID)");
      return S3SINK_OK;
    }
    if (ak || sk)
      return err_set(err, S3SINK_EINVAL, "%s is set but %s is not: set both (or neither)",
                     ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                     ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
  }
  char what[600], sec[512];
  snprintf(what, sizeof what, "profile '%s' in %s", a->profile, a->credentials_path);
  int rc = section_keys(a->credentials, a->profile, what, out, err);
  if (rc || out->access_key) return rc;
  snprintf(what, sizeof what, "profile '%s' in %s", a->profile, a->config_path);
  const char *csec = config_section(a, sec, sizeof sec);
  rc = section_keys(a->config, csec, what, out, err);
  if (rc || out->access_key) return rc;
  for (const char *const *k = FETCHED; *k; k++)
    if (ini_get(a->config, csec, *k))
      return err_set(err, S3SINK_EINVAL,
                     "profile '%s' in %s gets its credentials with %s, which this runtime "
                     "does not run: give a credentials provider (the Python package resolves "
                     "it with botocore), keys, or another profile",
                     a->profile, a->config_path, *k);
  if (a->profile_by && !ini_has_section(a->credentials, a->profile) && !ini_has_section(a->config, csec))
    return err_set(err, S3SINK_EINVAL, "profile '%s' (from %s) is in neither %s nor %s: check its name",
                   a->profile, a->profile_by, a->credentials_path, a->config_path);
  return S3SINK_OK;
}

/* Environment variables of credential sources the AWS SDKs use and this runtime does
 * not: named in "no credentials found", since they tell what the user expected. */
static const char *const OTHER_SOURCES[] = {
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", NULL};

void awsconfig_describe_search(const awsconfig *a, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap,
                              "none in the options (access_key, secret_key), the environment "
                              "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), nor for profile '%s' "
                              "in %s or %s",
                              a->profile, a->credentials_path, a->config_path);
  for (const char *const *v = OTHER_SOURCES; *v && n < cap; v++)
    if (env(*v))
      n += (size_t)snprintf(buf + n, cap - n,
                            "; %s is set, but that source is only read by the Python package "
                            "(botocore)", *v);
}
