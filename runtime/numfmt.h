/*
 * numfmt.h - internal: the `fmt` helper library that format scripts see. The value text
 * it writes (numbers, datetimes, base64, JSON escapes) is public: s3sink_text.h.
 */
#ifndef S3SINK_NUMFMT_H
#define S3SINK_NUMFMT_H

#include "s3sink_text.h"

struct lua_State;

/* Pushes the `fmt` helper table onto the Lua stack (see README, "Format scripts"). */
int numfmt_push_lib(struct lua_State *L);

#endif
