/* options.h - internal: completing and checking a configuration with the option table
 * (options.c). */
#ifndef S3SINK_OPTIONS_H
#define S3SINK_OPTIONS_H

#include "s3sink.h"

/* Folders of the bundled scripts (see tools/embed_scripts.lua), by kind. */
#define FORMAT_DIR "formats"
#define NAMING_DIR "scripts/naming"

/* Copies *in into *out with every option left at zero set to its default, after checking
 * every option given with the rules of the setters (and the bucket, required). */
int options_resolve(const s3sink_config *in, s3sink_config *out, s3sink_err *err);

/* Clears the pointers of *c that were borrowed for s3sink_open (strings, columns), so a
 * copy kept afterwards cannot dangle. */
void options_forget_borrowed(s3sink_config *c);

/* The default of a string option (static), or NULL. */
const char *options_default_string(const char *name);

/* The edit distance between two names (SIZE_MAX past 63 characters): to suggest the name
 * a typo meant. */
size_t options_distance(const char *a, const char *b);

/* "int, float, ..., any": the column types' names, for messages. */
void options_column_type_names(char *buf, size_t cap);

#endif
