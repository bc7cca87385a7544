/* awsconfig.h - internal: what the AWS environment variables and shared files say, read
 * the way the AWS CLI and SDKs read them: the profile (the `profile` option, else
 * AWS_PROFILE, AWS_DEFAULT_PROFILE, else "default"), the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials, sections "[name]") and the config
 * file (AWS_CONFIG_FILE, else ~/.aws/config, sections "[default]" and "[profile name]").
 * Read once, on the thread that opens a sink; the library never writes the environment. */
#ifndef S3SINK_AWSCONFIG_H
#define S3SINK_AWSCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct ini ini;

typedef struct awsconfig {
  char *profile;          /* the profile in use */
  const char *profile_by; /* what named it: "the profile option", "AWS_PROFILE",
                             "AWS_DEFAULT_PROFILE", or NULL (the default) */
  char *credentials_path, *config_path;
  ini *credentials, *config; /* NULL when the file is missing or unreadable */
} awsconfig;

/* Reads the environment and both files; profile_option is the sink's `profile` option
 * (NULL if not given). Missing files are no error. Release with awsconfig_free (also
 * after a failure). */
int awsconfig_load(awsconfig *a, const char *profile_option, s3sink_err *err);
void awsconfig_free(awsconfig *a);

/* A setting of the profile's section of the config file, or NULL. Borrowed from a. */
const char *awsconfig_get(const awsconfig *a, const char *key);

/* The S3 endpoint configured outside the sink: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
 * "s3" endpoint_url of the profile's `services` section, the profile's endpoint_url
 * (none when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's
 * ignore_configured_endpoint_urls is true). Borrowed (from a or the environment), or
 * NULL; `by` gets where it came from. */
const char *awsconfig_endpoint(const awsconfig *a, char *by, size_t cap);

/* The region configured outside the sink: AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * region; borrowed, or NULL. */
const char *awsconfig_region(const awsconfig *a, char *by, size_t cap);

/* Static credentials found outside the sink. */
typedef struct awsconfig_keys {
  const char *access_key, *secret_key, *session_token; /* borrowed; NULL: none found */
  char source[640];                                     /* where, for messages */
} awsconfig_keys;

/* The environment's keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
 * unless the profile was named by the `profile` option; else the profile's in the
 * credentials file, else in the config file. An error for half a pair, for a profile
 * named but found in neither file, and for a profile whose credentials come from
 * something this runtime does not run (credential_process, role_arn, SSO, web
 * identity); out->access_key NULL when nothing is found at all. */
int awsconfig_credentials(const awsconfig *a, awsconfig_keys *out, s3sink_err *err);

/* What was searched, for the message of "no credentials found". */
void awsconfig_describe_search(const awsconfig *a, char *buf, size_t cap);

#endif
