/* options.c - the sink's vocabulary, defined once: every option of s3sink_config (type,
 * range, default, documentation and the rule its value must follow) and every column
 * type. The bindings walk these tables to read, check and document what users give;
 * s3sink_open checks and completes a configuration with the same entries.
 *
 * Adding an option: a field in s3sink_config, an entry below, its use in the core, a
 * test. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "compress.h"
#include "error.h"
#include "lua_host.h"
#include "options.h"

/* ------------------------------------------------------------------------------------ */
/* Rules of string options                                                              */

typedef int (*string_rule)(const char *name, const char *value, s3sink_err *err);

static int rule_bucket(const char *name, const char *value, s3sink_err *err) {
  (void)name;
  if (!*value) return err_set(err, S3SINK_EINVAL, "no bucket given: set the bucket name");
  if (strchr(value, '/'))
    return err_set(err, S3SINK_EINVAL,
                   "bucket '%s' contains '/': give the bucket name alone and put the "
                   "rest in the prefix", value);
  return S3SINK_OK;
}

static int rule_prefix(const char *name, const char *value, s3sink_err *err) {
  if (value[0] == '/')
    return err_set(err, S3SINK_EINVAL,
                   "%s '%s' starts with '/': S3 keys have no leading slash, drop it",
                   name, value);
  return S3SINK_OK;
}

static int rule_writer_id(const char *name, const char *value, s3sink_err *err) {
  size_t n = 0;
  for (const char *p = value; *p; p++, n++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      n = 65; /* not valid, whatever its length */
  if (n == 0 || n > 64)
    return err_set(err, S3SINK_EINVAL,
                   "%s '%s' is not valid: use 1 to 64 characters from A-Z a-z 0-9 . _ -",
                   name, value);
  return S3SINK_OK;
}

static int rule_not_empty(const char *name, const char *value, s3sink_err *err) {
  if (!*value) return err_set(err, S3SINK_EINVAL, "%s is empty: give one, or none", name);
  return S3SINK_OK;
}

/* A list of names separated by commas: none of them empty. */
static int rule_names(const char *name, const char *value, s3sink_err *err) {
  size_t n = strlen(value);
  if (n == 0 || value[0] == ',' || value[n - 1] == ',' || strstr(value, ",,"))
    return err_set(err, S3SINK_EINVAL,
                   "%s '%s' has an empty column name: give the names separated by single "
                   "commas (\"country,city\"), or a list of them", name, value);
  return S3SINK_OK;
}

/* The template's syntax; what it may hold is checked at open, knowing the columns. */
static int rule_key_template(const char *name, const char *value, s3sink_err *err) {
  if (!*value) return err_set(err, S3SINK_EINVAL, "%s is empty: give one, or none", name);
  for (const char *p = value; *p; p++) {
    if (*p == '}')
      return err_set(err, S3SINK_EINVAL,
                     "%s '%s': '}' at position %d closes no placeholder; placeholders are "
                     "written {name}", name, value, (int)(p - value) + 1);
    if (*p != '{') continue;
    const char *end = p + 1 + strcspn(p + 1, "{}");
    if (*end != '}' || end == p + 1)
      return err_set(err, S3SINK_EINVAL,
                     "%s '%s': '{' at position %d is not closed by a name and '}'; "
                     "placeholders are written {name}", name, value, (int)(p - value) + 1);
    p = end;
  }
  return S3SINK_OK;
}

static int rule_format(const char *name, const char *value, s3sink_err *err) {
  (void)name;
  return luahost_check_script_name(FORMAT_DIR, value, "format", err);
}

static int rule_naming(const char *name, const char *value, s3sink_err *err) {
  (void)name;
  return luahost_check_script_name(NAMING_DIR, value, "naming", err);
}

static int rule_compression(const char *name, const char *value, s3sink_err *err) {
  if (compress_find(value) >= 0) return S3SINK_OK;
  char names[128];
  err_join_names(names, sizeof names, "\"", compress_name_at, NULL);
  return err_set(err, S3SINK_EINVAL, "%s '%s' is not known: give one of %s", name, value, names);
}

/* S3's StorageClass values (the S3 API model, 2026). */
static const char *const storage_classes[] = {
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
    "FSX_OPENZFS", "FSX_ONTAP", "AWS_BACKUP_WARM", "AWS_BACKUP_LOW_COST_WARM", NULL};

static const char *const sse_kinds[] = {"AES256", "aws:kms", NULL};

static const char *list_at(size_t i, void *ud) {
  const char *const *list = ud;
  for (size_t j = 0; j < i; j++)
    if (!list[j]) return NULL;
  return list[i];
}

static bool same_ignoring_case(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a >= 'a' && *a <= 'z' ? (char)(*a - 32) : *a;
    char y = *b >= 'a' && *b <= 'z' ? (char)(*b - 32) : *b;
    if (x != y) return false;
  }
  return *a == *b;
}

/* The value must be one of `list`, spelt as there (S3 compares exactly). */
static int one_of(const char *name, const char *value, const char *const *list, s3sink_err *err) {
  for (const char *const *v = list; *v; v++)
    if (strcmp(*v, value) == 0) return S3SINK_OK;
  for (const char *const *v = list; *v; v++)
    if (same_ignoring_case(*v, value))
      return err_set(err, S3SINK_EINVAL, "%s '%s' is not spelt as S3 spells it: write '%s'",
                     name, value, *v);
  char names[512];
  err_join_names(names, sizeof names, "", list_at, (void *)list);
  return err_set(err, S3SINK_EINVAL, "%s '%s' is not one of S3's: give one of %s", name,
                 value, names);
}

static int rule_storage_class(const char *name, const char *value, s3sink_err *err) {
  return one_of(name, value, storage_classes, err);
}

static int rule_sse(const char *name, const char *value, s3sink_err *err) {
  return one_of(name, value, sse_kinds, err);
}

/* A KMS key id, ARN or alias: one word of printable ASCII. */
static int rule_kms_key(const char *name, const char *value, s3sink_err *err) {
  if (!*value) return err_set(err, S3SINK_EINVAL, "%s is empty: give a key id, ARN or alias, or none", name);
  for (const char *p = value; *p; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
      return err_set(err, S3SINK_EINVAL,
                     "%s '%s' holds blanks, control or non-ASCII characters: give the key "
                     "id, ARN or alias as KMS shows it", name, value);
  return S3SINK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Rules of map options                                                                 */

typedef int (*map_rule)(const char *name, const s3sink_pair *pairs, size_t n, s3sink_err *err);

#define MAX_TAGS 10
#define MAX_TAG_KEY 128    /* characters (Unicode code points) */
#define MAX_TAG_VALUE 256
/* S3 keeps at most 2 KiB of user metadata (names and values, in bytes); the sink's own
 * entry (s3sink-sha256, the body's identity) takes part of it */
#define MAX_METADATA_BYTES 2048
#define OWN_METADATA_BYTES (sizeof "s3sink-sha256" - 1 + 64)
#define OWN_METADATA_PREFIX "s3sink-"

/* Code points of valid UTF-8 text, or -1 if it is not. */
static long utf8_length(const char *s) {
  long n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; n++) {
    int more = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
    if (more < 0 || (more == 1 && *p < 0xC2)) return -1;
    unsigned long cp = more == 0 ? *p : (unsigned long)(*p & (0x3F >> more));
    for (int i = 1; i <= more; i++) {
      if ((p[i] & 0xC0) != 0x80) return -1;
      cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (more == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return -1;
    p += more + 1;
  }
  return n;
}

/* Tag text: letters and digits of any script, spaces, and + - = . _ : / @ (S3's rule).
 * Non-ASCII characters are taken as letters. */
static bool tag_text_ok(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x80 && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                       (*p >= '0' && *p <= '9') || strchr(" +-=._:/@", *p)))
      return false;
  return true;
}

/* What every map needs: keys and values given, keys distinct. */
static int check_pairs(const char *name, const s3sink_pair *pairs, size_t n, s3sink_err *err) {
  if (n && !pairs) return err_set(err, S3SINK_EINVAL, "%s: %zu pairs but no array", name, n);
  for (size_t i = 0; i < n; i++) {
    if (!pairs[i].key || !pairs[i].value)
      return err_set(err, S3SINK_EINVAL, "%s: pair %zu has no key or no value", name, i + 1);
    for (size_t j = 0; j < i; j++)
      if (strcmp(pairs[i].key, pairs[j].key) == 0)
        return err_set(err, S3SINK_EINVAL, "%s: key '%s' is given twice: give it once", name,
                       pairs[i].key);
  }
  return S3SINK_OK;
}

static int rule_tags(const char *name, const s3sink_pair *pairs, size_t n, s3sink_err *err) {
  int rc = check_pairs(name, pairs, n, err);
  if (rc) return rc;
  if (n > MAX_TAGS)
    return err_set(err, S3SINK_EINVAL, "%s: %zu tags, S3 keeps at most %d per object: give fewer",
                   name, n, MAX_TAGS);
  for (size_t i = 0; i < n; i++) {
    const char *k = pairs[i].key, *v = pairs[i].value;
    long kn = utf8_length(k), vn = utf8_length(v);
    if (kn < 1 || kn > MAX_TAG_KEY)
      return err_set(err, S3SINK_EINVAL,
                     "%s: key '%.200s' is not valid: S3 takes 1 to %d characters of UTF-8 text",
                     name, k, MAX_TAG_KEY);
    if (vn < 0 || vn > MAX_TAG_VALUE)
      return err_set(err, S3SINK_EINVAL,
                     "%s: the value of '%s' is not valid: S3 takes 0 to %d characters of UTF-8 "
                     "text", name, k, MAX_TAG_VALUE);
    if (!tag_text_ok(k) || !tag_text_ok(v))
      return err_set(err, S3SINK_EINVAL,
                     "%s: tag '%s' = '%.300s' holds a character S3 refuses in tags: use "
                     "letters, digits, spaces and + - = . _ : / @", name, k, v);
    if (strncmp(k, "aws:", 4) == 0)
      return err_set(err, S3SINK_EINVAL, "%s: key '%s' starts with 'aws:', which S3 keeps "
                     "for its own tags: choose another key", name, k);
  }
  return S3SINK_OK;
}

static int rule_metadata(const char *name, const s3sink_pair *pairs, size_t n, s3sink_err *err) {
  int rc = check_pairs(name, pairs, n, err);
  if (rc) return rc;
  size_t total = OWN_METADATA_BYTES;
  for (size_t i = 0; i < n; i++) {
    const char *k = pairs[i].key, *v = pairs[i].value;
    if (!*k) return err_set(err, S3SINK_EINVAL, "%s: a name is empty: give every entry a name", name);
    for (const char *p = k; *p; p++) {
      if (*p >= 'A' && *p <= 'Z')
        return err_set(err, S3SINK_EINVAL,
                       "%s: name '%s' has upper-case letters, which S3 stores in lower case: "
                       "write it in lower case", name, k);
      if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
            *p == '.'))
        return err_set(err, S3SINK_EINVAL,
                       "%s: name '%.200s' is not valid: use a-z 0-9 - _ . (it becomes the "
                       "header x-amz-meta-<name>)", name, k);
    }
    if (strncmp(k, OWN_METADATA_PREFIX, sizeof OWN_METADATA_PREFIX - 1) == 0)
      return err_set(err, S3SINK_EINVAL, "%s: name '%s' starts with '" OWN_METADATA_PREFIX
                     "', which the sink keeps for its own metadata: choose another", name, k);
    for (const char *p = v; *p; p++)
      if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
        return err_set(err, S3SINK_EINVAL,
                       "%s: the value of '%s' holds control or non-ASCII characters, which "
                       "S3 does not keep as sent in metadata: encode it (e.g. with "
                       "percent-encoding) into printable ASCII", name, k);
    size_t vl = strlen(v);
    if (vl && (v[0] == ' ' || v[vl - 1] == ' '))
      return err_set(err, S3SINK_EINVAL, "%s: the value of '%s' starts or ends with a space, "
                     "which HTTP drops: trim it", name, k);
    total += strlen(k) + vl;
  }
  if (total > MAX_METADATA_BYTES)
    return err_set(err, S3SINK_EINVAL,
                   "%s: %zu bytes of names and values, S3 keeps at most %d in all and the "
                   "sink's own entry takes %zu: give less", name, total - OWN_METADATA_BYTES,
                   MAX_METADATA_BYTES, OWN_METADATA_BYTES);
  return S3SINK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* The options                                                                          */

typedef struct option_def {
  s3sink_option pub;
  size_t offset;           /* of the field in s3sink_config */
  int64_t default_int;     /* integers: the value of a field left at 0 */
  const char *default_str; /* strings: the value of a field left NULL */
  string_rule rule;        /* strings: what the value must look like, or NULL */
  map_rule map_rule;       /* maps: what the pairs must look like */
} option_def;

#define STRING(f, group, dflt, rule, doc) \
  {{#f, S3SINK_OPTION_STRING, group, 0, 0, false, dflt, doc, false}, offsetof(s3sink_config, f), 0, dflt, rule, NULL}
#define INT(f, group, lo, hi, unlimited, dflt, dflt_text, doc) \
  {{#f, S3SINK_OPTION_INT, group, lo, hi, unlimited, dflt_text, doc, false}, offsetof(s3sink_config, f), dflt, NULL, NULL, NULL}
#define BOOL(f, group, doc) \
  {{#f, S3SINK_OPTION_BOOL, group, 0, 1, false, "false", doc, false}, offsetof(s3sink_config, f), 0, NULL, NULL, NULL}
#define LIST(f, group, doc) \
  {{#f, S3SINK_OPTION_STRING, group, 0, 0, false, NULL, doc, true}, offsetof(s3sink_config, f), 0, NULL, rule_names, NULL}
#define MAP(f, group, rule, doc) \
  {{#f, S3SINK_OPTION_MAP, group, 0, 0, false, NULL, doc, false}, offsetof(s3sink_config, f), 0, NULL, NULL, rule}

#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define MAX_PARTS 10000 /* S3's most parts per multipart upload */

static const option_def options[] = {
    STRING(endpoint, "target", NULL, rule_not_empty,
           "URL of the S3 service, e.g. http://127.0.0.1:9000 for a local MinIO (https if "
           "no scheme is given); default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the AWS "
           "profile's endpoint_url, else AWS, https://s3.<region>.amazonaws.com."),
    STRING(region, "target", "us-east-1", rule_not_empty,
           "Region the requests are signed for; default: AWS_REGION, AWS_DEFAULT_REGION or "
           "the AWS profile's region, else us-east-1."),
    STRING(bucket, "target", NULL, rule_bucket, "The bucket objects are written to (required)."),
    STRING(prefix, "target", "", rule_prefix,
           "Key prefix of every object, e.g. \"out/run1/\" (no leading slash)."),
    BOOL(virtual_hosted, "target",
         "Virtual-hosted addressing (bucket.host) instead of path-style (host/bucket, what "
         "MinIO expects); refused for an endpoint that is an IP address."),
    STRING(access_key, "target", NULL, NULL,
           "Access key id. Without it and secret_key, the credentials come from the "
           "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then "
           "the profile's in the shared files (~/.aws/credentials, ~/.aws/config); none "
           "found is an error unless anonymous is set."),
    STRING(secret_key, "target", NULL, NULL, "Secret access key, given with access_key."),
    STRING(session_token, "target", NULL, NULL, "Session token of temporary credentials."),
    STRING(profile, "target", NULL, rule_not_empty,
           "Profile of the AWS shared files to take the credentials (and, when not given, "
           "the endpoint and region) from; naming it skips the environment's keys. "
           "Default: AWS_PROFILE, AWS_DEFAULT_PROFILE, else \"default\"."),
    STRING(format, "output", "csv", rule_format,
           "Object format: a bundled one (\"csv\", \"json\" for JSON Lines) or the path of a "
           "Lua format script."),
    STRING(naming, "output", "default", rule_naming,
           "Object naming policy: \"default\" (<prefix><UTC time>-<sequence>[-<writer_id>]"
           ".<ext>, increasing, never reused) or the path of a Lua naming script."),
    INT(write_interval_ms, "output", 1, INT64_MAX, false, 60000, "60000",
        "Minimum time between two uploads, in milliseconds: once it has passed since the "
        "last upload, the complete minibatches buffered are uploaded as one new object (one "
        "per partition with partition_by or time_column)."),
    INT(max_object_rows, "output", 1, INT64_MAX, false, 0, NULL,
        "Roll objects by row count: an object holding this many rows is uploaded at the "
        "end of the minibatch that reached it, without waiting for write_interval_ms "
        "(minibatches are never split for it). Default: no limit."),
    INT(max_object_bytes, "output", 1, INT64_MAX, false, 0, NULL,
        "Roll objects by size: an object holding this many bytes (header included) is "
        "uploaded at the end of the minibatch that reached it, without waiting for "
        "write_interval_ms (minibatches are never split for it). Default: no limit."),
    STRING(compression, "output", "none", rule_compression,
           "Compression of every object: \"none\", \"gzip\" or \"zstd\". An object is "
           "then one gzip member or zstd frame (with its content size and a checksum) of "
           "exactly the bytes it would hold uncompressed, header included; its key ends in "
           ".gz or .zst after the format's extension (\"csv.gz\", \"json.zst\"); its "
           "Content-Type is application/gzip or application/zstd, with no Content-Encoding "
           "(readers get the stored bytes). The sink's thread compresses each object once, "
           "before its first upload, never the host's per row; max_object_bytes counts "
           "bytes before compression."),
    INT(compression_level, "output", 1, 19, false, 0, NULL,
        "Compression level: gzip 1 (fastest) to 9, zstd 1 to 19. Default: the library's "
        "(gzip 6, zstd 3)."),
    STRING(storage_class, "output", NULL, rule_storage_class,
           "S3 storage class of every object (x-amz-storage-class), one of S3's: STANDARD, "
           "REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, "
           "DEEP_ARCHIVE, GLACIER_IR, ... (MinIO takes STANDARD and REDUCED_REDUNDANCY). "
           "Default: the bucket's."),
    STRING(sse, "output", NULL, rule_sse,
           "Server-side encryption of every object: \"AES256\" (SSE-S3, keys managed by "
           "the store) or \"aws:kms\" (SSE-KMS, see sse_kms_key_id). Default: the "
           "bucket's."),
    STRING(sse_kms_key_id, "output", NULL, rule_kms_key,
           "The KMS key of sse=\"aws:kms\": a key id, ARN or alias. Default: the account's "
           "AWS managed key (aws/s3)."),
    MAP(tags, "output", rule_tags,
        "Tags of every object (x-amz-tagging), e.g. {team = \"data\"}: at most 10; keys "
        "of 1 to 128 characters, not starting with aws:, values of 0 to 256; letters, "
        "digits, spaces and + - = . _ : / @."),
    MAP(metadata, "output", rule_metadata,
        "User metadata of every object (x-amz-meta-<name>), e.g. {source = \"pathway\"}: "
        "names of a-z 0-9 - _ . not starting with s3sink-, values of printable ASCII, "
        "about 1.9 KiB in all (S3 keeps 2 KiB; the sink's own entry, s3sink-sha256, "
        "takes the rest)."),
    STRING(key_template, "output", NULL, rule_key_template,
           "Object keys without a naming script, e.g. "
           "\"{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}\". Placeholders: {prefix}, "
           "{date} (YYYY-MM-DD), {year}, {month}, {day}, {hour}, {minute} (UTC: of time_column's "
           "event time, else of the flush), {stamp} (the flush time, 20261125T002556.123Z), "
           "{seq} (the writer's object counter), {writer_id}, {ext}, {partition} (every "
           "partition_by column as name=value/...) and each partition_by column by name. It "
           "must start with {prefix} and end with {stamp}, {seq} in the object's name, then "
           "only text, {writer_id} and {ext}: keys stay unique and increase in each "
           "partition (docs/partitions.md)."),
    LIST(partition_by, "output",
         "Columns whose values route rows to partitions: each partition's complete "
         "minibatches go to objects of its own, under keys that place the values (see "
         "key_template; default \"{prefix}{partition}/{stamp}-{seq}.{ext}\", Hive-style "
         "name=value folders). Values are their CSV text, with bytes other than A-Z a-z 0-9 "
         "- _ . ~ written %XX; null and \"\" are __HIVE_DEFAULT_PARTITION__."),
    STRING(time_column, "output", NULL, rule_not_empty,
           "A datetime column holding the rows' event time: key_template's {date}, {year}, "
           "{month}, {day}, {hour} and {minute} are then those of each row (UTC; a naive "
           "datetime is read as UTC), which routes rows to one object per period, instead "
           "of the flush time. A naming script gets the rows' range (min_event_time_ns, "
           "max_event_time_ns)."),
    STRING(writer_id, "output", NULL, rule_writer_id,
           "Id put in the object keys ([A-Za-z0-9._-]{1,64}), so that several writers can "
           "share a prefix."),
    INT(connect_timeout_ms, "transport", 1, INT32_MAX, false, 10000, "10000",
        "Connection timeout of each request, in milliseconds."),
    INT(request_timeout_ms, "transport", 1, INT32_MAX, false, 120000, "120000",
        "Total timeout of each request, in milliseconds."),
    INT(multipart_threshold_bytes, "transport", 5 * MIB, 5 * GIB, false, 64 * MIB,
        "67108864 (64 MiB)",
        "Objects of at least this many bytes as stored (compressed, with compression) go up "
        "as multipart uploads, in parts of multipart_part_bytes, each part retried on its "
        "own; smaller ones as one PutObject. 5 MiB to 5 GiB (S3's largest PutObject)."),
    INT(multipart_part_bytes, "transport", 5 * MIB, 5 * GIB, false, 16 * MIB,
        "16777216 (16 MiB)",
        "Size of the parts of a multipart upload (the last one smaller), 5 MiB to 5 GiB "
        "(S3's limits). An upload has at most 10000 parts, so the largest object the "
        "budgets allow (max_buffer_bytes, or spool_max_bytes with a spool) must fit 10000 "
        "of them. An object still being written that holds one part starts its upload "
        "then, its parts going while rows come, and is completed once sealed (early "
        "uploads: with background_uploads, no spool_dir, no compression, no partitions, and "
        "the default naming or a key_template)."),
    BOOL(insecure_tls, "transport", "Do not verify TLS certificates (testing only)."),
    STRING(ca_file, "transport", NULL, rule_not_empty,
           "CA bundle to verify the endpoint's TLS certificate with."),
    BOOL(anonymous, "transport",
         "Send unsigned requests, without credentials (a bucket whose policy allows "
         "anonymous writes). Without it, finding no credentials is an error."),
    BOOL(create_bucket, "output", "Create the bucket if it does not exist."),
    INT(max_buffer_bytes, "reliability", 1, INT64_MAX, false, GIB, "1073741824 (1 GiB)",
        "Memory budget for buffered and in-flight rows, in bytes. When uploads fall behind, "
        "writing waits for them (backpressure); a minibatch larger than the budget is split "
        "across consecutive objects. With compression it counts rows as formatted and each "
        "queued object as held: uncompressed, then compressed once the sink's thread has "
        "compressed it (the compressed copy being made is held beside it meanwhile)."),
    INT(max_retry_ms, "reliability", 1, INT64_MAX, true, 300000, "300000",
        "How long transient upload failures (connection errors, timeouts, HTTP 5xx, "
        "throttling) are retried, with exponential backoff and full jitter, before uploads "
        "stop with the error; -1 retries forever. Permanent errors (access denied, no such "
        "bucket) stop uploads at once. Either way the rows are kept."),
    INT(max_open_partitions, "reliability", 1, 1000000, false, 1000, "1000",
        "Partitions kept open at once (partition_by, time_column). A row of another "
        "partition then takes the place of the least recently written one without rows, "
        "sealing the complete minibatches first when every one holds rows (and, if one "
        "minibatch spans more partitions, its rows so far)."),
    STRING(spool_dir, "reliability", NULL, rule_not_empty,
           "Folder of the crash-safe spool: every complete minibatch is on disk (fsync) "
           "before time_end returns, uploads read from there, and the next sink on the "
           "folder uploads what a crashed process left, exactly once. One sink per folder. "
           "Without it, rows not uploaded yet are lost if the process dies."),
    INT(spool_max_bytes, "reliability", 1, INT64_MAX, false, 8 * GIB, "8589934592 (8 GiB)",
        "Disk budget of the spool, in bytes; then writing waits for uploads."),
    BOOL(no_timer, "host",
         "No timer thread: nothing is uploaded in the background and writes never wait for "
         "room (tests drive the sink by hand)."),
    BOOL(background_uploads, "host",
         "A flush that is not forced only names the object; the timer thread uploads it, so "
         "the host's thread never waits on the network (forced flushes and close still "
         "wait)."),
};
#define NOPTIONS (sizeof options / sizeof options[0])

static const option_def *find_def(const char *name) {
  for (size_t i = 0; i < NOPTIONS; i++)
    if (strcmp(options[i].pub.name, name) == 0) return &options[i];
  return NULL;
}

const s3sink_option *s3sink_option_info(size_t i) { return i < NOPTIONS ? &options[i].pub : NULL; }

const s3sink_option *s3sink_option_find(const char *name) {
  const option_def *d = name ? find_def(name) : NULL;
  return d ? &d->pub : NULL;
}

static const char *type_name(s3sink_option_type t) {
  return t == S3SINK_OPTION_STRING ? "a string" : t == S3SINK_OPTION_INT ? "an integer"
         : t == S3SINK_OPTION_BOOL ? "a boolean" : "a map of strings";
}

/* Edit distance, capped: enough to suggest the option a typo meant. */
size_t options_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return SIZE_MAX;
  size_t row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static const char *option_name(size_t i, void *ud) {
  (void)ud;
  return i < NOPTIONS ? options[i].pub.name : NULL;
}

static int unknown_option(const char *name, s3sink_err *err) {
  const char *best = NULL;
  size_t best_d = 3; /* at most two edits away */
  for (size_t i = 0; i < NOPTIONS; i++) {
    size_t d = options_distance(name, options[i].pub.name);
    if (d < best_d) best_d = d, best = options[i].pub.name;
  }
  if (best) return err_set(err, S3SINK_EINVAL, "unknown option '%s': did you mean '%s'?", name, best);
  char names[1024];
  err_join_names(names, sizeof names, "", option_name, NULL);
  return err_set(err, S3SINK_EINVAL, "unknown option '%s': the options are %s", name, names);
}

static const option_def *lookup(const char *name, s3sink_option_type type, s3sink_err *err) {
  const option_def *d = name ? find_def(name) : NULL;
  if (!d) {
    unknown_option(name ? name : "(null)", err);
    return NULL;
  }
  if (d->pub.type != type) {
    err_set(err, S3SINK_EINVAL, "option '%s' takes %s, not %s", name,
            type_name(d->pub.type), type_name(type));
    return NULL;
  }
  return d;
}

static int check_int(const option_def *d, int64_t v, s3sink_err *err) {
  const s3sink_option *o = &d->pub;
  if ((v >= o->min && v <= o->max) || (o->unlimited && v == -1)) return S3SINK_OK;
  char range[96];
  if (o->max == INT64_MAX) snprintf(range, sizeof range, "%" PRId64 " or more", o->min);
  else snprintf(range, sizeof range, "from %" PRId64 " to %" PRId64, o->min, o->max);
  return err_set(err, S3SINK_EINVAL, "%s is %" PRId64 ": it must be %s%s", o->name, v,
                 range, o->unlimited ? ", or -1 for no limit" : "");
}

#define FIELD_AT(cfg, d, type) ((type *)(void *)((char *)(cfg) + (d)->offset))

int s3sink_config_set_string(s3sink_config *cfg, const char *name, const char *value,
                             s3sink_err *err) {
  const option_def *d = lookup(name, S3SINK_OPTION_STRING, err);
  if (!d) return S3SINK_EINVAL;
  int rc = value && d->rule ? d->rule(name, value, err) : S3SINK_OK;
  if (rc == S3SINK_OK) *FIELD_AT(cfg, d, const char *) = value;
  return rc;
}

int s3sink_config_set_int(s3sink_config *cfg, const char *name, int64_t value, s3sink_err *err) {
  const option_def *d = lookup(name, S3SINK_OPTION_INT, err);
  if (!d) return S3SINK_EINVAL;
  int rc = check_int(d, value, err);
  if (rc == S3SINK_OK) *FIELD_AT(cfg, d, int64_t) = value;
  return rc;
}

int s3sink_config_set_bool(s3sink_config *cfg, const char *name, bool value, s3sink_err *err) {
  const option_def *d = lookup(name, S3SINK_OPTION_BOOL, err);
  if (!d) return S3SINK_EINVAL;
  *FIELD_AT(cfg, d, bool) = value;
  return S3SINK_OK;
}

int s3sink_config_set_map(s3sink_config *cfg, const char *name, const s3sink_pair *pairs,
                          size_t n, s3sink_err *err) {
  const option_def *d = lookup(name, S3SINK_OPTION_MAP, err);
  if (!d) return S3SINK_EINVAL;
  int rc = d->map_rule(name, pairs, n, err);
  if (rc == S3SINK_OK) *FIELD_AT(cfg, d, s3sink_map) = (s3sink_map){n ? pairs : NULL, n};
  return rc;
}

/* Rules across options. */
static int check_together(const s3sink_config *c, s3sink_err *err) {
  int codec = compress_find(c->compression);
  const compress_codec_info *ci = compress_info((compress_codec)(codec < 0 ? 0 : codec));
  if (c->compression_level && codec == COMPRESS_NONE)
    return err_set(err, S3SINK_EINVAL,
                   "compression_level is set but compression is \"none\": set compression to "
                   "\"gzip\" or \"zstd\", or drop the level");
  if (c->compression_level &&
      (c->compression_level < ci->min_level || c->compression_level > ci->max_level))
    return err_set(err, S3SINK_EINVAL, "compression_level is %" PRId64 ": %s takes %d to %d",
                   c->compression_level, ci->name, ci->min_level, ci->max_level);
  /* every object the budgets allow must fit in 10000 parts: in memory an object is at
   * most max_buffer_bytes; a spooled one (a minibatch included) at most spool_max_bytes */
  int64_t largest = c->spool_dir ? c->spool_max_bytes : c->max_buffer_bytes;
  int64_t parts_hold = c->multipart_part_bytes * MAX_PARTS;
  if (largest > parts_hold) {
    int64_t need = (largest + MAX_PARTS - 1) / MAX_PARTS;
    need = (need + MIB - 1) / MIB * MIB;
    return err_set(err, S3SINK_EINVAL,
                   "%s is %" PRId64 " bytes, but an object that large does not fit the 10000 "
                   "parts of a multipart upload of multipart_part_bytes (%" PRId64 "): raise "
                   "multipart_part_bytes to %" PRId64 " or more, or lower %s",
                   c->spool_dir ? "spool_max_bytes" : "max_buffer_bytes", largest,
                   c->multipart_part_bytes, need,
                   c->spool_dir ? "spool_max_bytes" : "max_buffer_bytes");
  }
  if (c->sse_kms_key_id && !(c->sse && strcmp(c->sse, "aws:kms") == 0))
    return err_set(err, S3SINK_EINVAL,
                   "sse_kms_key_id is set but sse is %s%s%s: set sse to \"aws:kms\" to encrypt "
                   "with that key", c->sse ? "'" : "not set", c->sse ? c->sse : "",
                   c->sse ? "'" : "");
  return S3SINK_OK;
}

int options_resolve(const s3sink_config *in, s3sink_config *out, s3sink_err *err) {
  if (!in) return err_set(err, S3SINK_EINVAL, "no configuration given");
  *out = *in;
  for (size_t i = 0; i < NOPTIONS; i++) {
    const option_def *d = &options[i];
    int rc = S3SINK_OK;
    if (d->pub.type == S3SINK_OPTION_STRING) {
      const char **v = FIELD_AT(out, d, const char *);
      if (*v && d->rule) rc = d->rule(d->pub.name, *v, err);
      else if (!*v) *v = d->default_str;
    } else if (d->pub.type == S3SINK_OPTION_INT) {
      int64_t *v = FIELD_AT(out, d, int64_t);
      if (*v) rc = check_int(d, *v, err);
      else *v = d->default_int;
    } else if (d->pub.type == S3SINK_OPTION_MAP) {
      const s3sink_map *m = FIELD_AT(out, d, s3sink_map);
      rc = d->map_rule(d->pub.name, m->pairs, m->n, err);
    }
    if (rc) return rc;
  }
  int rc = check_together(out, err);
  if (rc) return rc;
  if (!out->bucket) return err_set(err, S3SINK_EINVAL, "no bucket given: set the bucket name");
  if ((out->access_key && *out->access_key) != (out->secret_key && *out->secret_key))
    return err_set(err, S3SINK_EINVAL,
                   "only one of access_key and secret_key is set: give both, or neither "
                   "(then they come from the environment or an AWS profile)");
  if (out->session_token && *out->session_token && !(out->access_key && *out->access_key))
    return err_set(err, S3SINK_EINVAL,
                   "session_token is set without access_key and secret_key: give all three");
  return S3SINK_OK;
}

const char *s3sink_bundled_name(const char *kind, size_t i) {
  if (!kind) return NULL;
  if (strcmp(kind, "format") == 0) return luahost_bundled_name(FORMAT_DIR, i);
  if (strcmp(kind, "naming") == 0) return luahost_bundled_name(NAMING_DIR, i);
  return NULL;
}

void options_forget_borrowed(s3sink_config *c) {
  for (size_t i = 0; i < NOPTIONS; i++) {
    if (options[i].pub.type == S3SINK_OPTION_STRING) *FIELD_AT(c, &options[i], const char *) = NULL;
    if (options[i].pub.type == S3SINK_OPTION_MAP) *FIELD_AT(c, &options[i], s3sink_map) = (s3sink_map){NULL, 0};
  }
  c->columns = NULL;
  c->ncolumns = 0;
}

const char *options_default_string(const char *name) {
  const option_def *d = find_def(name);
  return d ? d->default_str : NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Column types                                                                         */

static const s3sink_column_type column_types[S3SINK_T_COUNT] = {
    [S3SINK_T_INT] = {"int", S3SINK_V_INT, "64-bit signed integer"},
    [S3SINK_T_FLOAT] = {"float", S3SINK_V_FLOAT, "64-bit float"},
    [S3SINK_T_BOOL] = {"bool", S3SINK_V_BOOL, "true or false"},
    [S3SINK_T_STR] = {"str", S3SINK_V_STR, "UTF-8 text"},
    [S3SINK_T_BYTES] = {"bytes", S3SINK_V_BYTES, "arbitrary bytes (base64 in the output)"},
    [S3SINK_T_POINTER] = {"pointer", S3SINK_V_POINTER, "a Pathway row id (\"^...\")"},
    [S3SINK_T_DATETIME_NAIVE] = {"datetime_naive", S3SINK_V_DATETIME_NAIVE,
                                 "date and time without a zone, nanoseconds"},
    [S3SINK_T_DATETIME_UTC] = {"datetime_utc", S3SINK_V_DATETIME_UTC,
                               "an instant, nanoseconds since the Unix epoch"},
    [S3SINK_T_DURATION] = {"duration", S3SINK_V_DURATION, "nanoseconds"},
    [S3SINK_T_JSON] = {"json", S3SINK_V_JSON, "a JSON value"},
    [S3SINK_T_TUPLE] = {"tuple", S3SINK_V_JSON, "a tuple, as a JSON array"},
    [S3SINK_T_LIST] = {"list", S3SINK_V_JSON, "a list, as a JSON array"},
    [S3SINK_T_ARRAY] = {"array", S3SINK_V_JSON, "an n-dimensional array, as nested JSON arrays"},
    [S3SINK_T_ANY] = {"any", S3SINK_V_NULL, "values of every kind, each written by its own"},
};

const s3sink_column_type *s3sink_column_type_info(s3sink_type t) {
  return (unsigned)t < S3SINK_T_COUNT ? &column_types[t] : NULL;
}

int s3sink_column_type_find(const char *name) {
  for (int t = 0; name && t < S3SINK_T_COUNT; t++)
    if (strcmp(column_types[t].name, name) == 0) return t;
  return -1;
}

static const char *type_name_at(size_t i, void *ud) {
  (void)ud;
  return i < S3SINK_T_COUNT ? column_types[i].name : NULL;
}

void options_column_type_names(char *buf, size_t cap) {
  err_join_names(buf, cap, "", type_name_at, NULL);
}
