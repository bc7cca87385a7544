/* lua_patterns.c - Lua 5.4 pattern matching that charges its steps to a budget (see
 * lua_patterns.h). Written from the semantics of the Lua 5.4 reference manual, section
 * 6.4.1 ("Patterns"), and checked against the interpreter's own string library by
 * spec/sandbox_spec.lua, results and error messages alike. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_patterns.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200               /* recursion of the matcher, as in Lua */
#define CHARGE_EVERY 4096           /* steps between two calls of the charge function */
#define CAP_OPEN (-1)               /* capture started, not closed yet */
#define CAP_POSITION (-2)           /* "()" capture: a position */
#define ESC '%'

typedef struct matcher {
  lua_State *L;
  const char *src, *src_end; /* subject */
  const char *pat_end;
  int depth;                 /* recursion left */
  int ncap;
  struct {
    const char *start;
    ptrdiff_t len;           /* or CAP_OPEN / CAP_POSITION */
  } cap[MAX_CAPTURES];
  size_t steps;              /* not yet charged */
  luapat_charge_fn charge;
} matcher;

static void step(matcher *m, size_t n) {
  m->steps += n;
  if (m->steps >= CHARGE_EVERY) {
    size_t s = m->steps;
    m->steps = 0;
    m->charge(m->L, s);
  }
}

static void settle(matcher *m) {
  if (m->steps) {
    size_t s = m->steps;
    m->steps = 0;
    m->charge(m->L, s);
  }
}

static void matcher_init(matcher *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp, luapat_charge_fn charge) {
  m->L = L;
  m->src = s;
  m->src_end = s + ls;
  m->pat_end = p + lp;
  m->charge = charge;
  m->steps = 0;
}

/* Before each attempt at a new position. */
static void matcher_reset(matcher *m) {
  m->ncap = 0;
  m->depth = MAX_DEPTH;
}

/* ----------------------------------------------------------------------------------- */
/* Single characters and classes                                                       */

static bool in_class(unsigned char c, unsigned char cl) {
  bool r;
  switch (tolower(cl)) {
  case 'a': r = isalpha(c); break;
  case 'c': r = iscntrl(c); break;
  case 'd': r = isdigit(c); break;
  case 'g': r = isgraph(c); break;
  case 'l': r = islower(c); break;
  case 'p': r = ispunct(c); break;
  case 's': r = isspace(c); break;
  case 'u': r = isupper(c); break;
  case 'w': r = isalnum(c); break;
  case 'x': r = isxdigit(c); break;
  case 'z': r = c == 0; break; /* deprecated in Lua 5.2, still accepted by 5.4 */
  default: return cl == c; /* "%." and the like: the character itself */
  }
  return isupper(cl) ? !r : r;
}

/* The end of the single-character class that starts at p ("x", ".", "%a", "[...]"). The
 * pattern is a Lua string, so reading *pat_end (its terminating NUL) is safe. */
static const char *class_end(matcher *m, const char *p) {
  char c = *p++;
  if (c == ESC) {
    if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (*p == '^') p++;
    /* the first character of a set is never its end: "[]]" is the set of ']' */
    do {
      if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (missing ']')");
      c = *p++;
      if (c == ESC && p < m->pat_end) p++;
    } while (*p != ']');
    return p + 1;
  }
  return p;
}

/* Whether c is in the set [p, close]: p at '[', close at its ']'. */
static bool in_set(unsigned char c, const char *p, const char *close) {
  bool want = true;
  p++;
  if (*p == '^') {
    want = false;
    p++;
  }
  while (p < close) {
    if (*p == ESC) {
      p++;
      if (in_class(c, (unsigned char)*p)) return want;
      p++;
    } else if (p[1] == '-' && p + 2 < close) {
      if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return want;
      p += 3;
    } else {
      if ((unsigned char)*p == c) return want;
      p++;
    }
  }
  return !want;
}

/* Whether the subject character at s matches the class [p, ep). */
static bool single(const matcher *m, const char *s, const char *p, const char *ep) {
  if (s >= m->src_end) return false;
  unsigned char c = (unsigned char)*s;
  switch (*p) {
  case '.': return true;
  case ESC: return in_class(c, (unsigned char)p[1]);
  case '[': return in_set(c, p, ep - 1);
  default: return (unsigned char)*p == c;
  }
}

/* ----------------------------------------------------------------------------------- */
/* The matcher                                                                         */

static const char *match(matcher *m, const char *s, const char *p);

/* Longest run first, then shorter ones ("*", "+"). */
static const char *greedy(matcher *m, const char *s, const char *p, const char *ep) {
  ptrdiff_t n = 0;
  while (single(m, s + n, p, ep)) n++;
  step(m, (size_t)n);
  for (; n >= 0; n--) {
    const char *r = match(m, s + n, ep + 1);
    if (r) return r;
  }
  return NULL;
}

/* Shortest run first ("-"). */
static const char *lazy(matcher *m, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *r = match(m, s, ep + 1);
    if (r) return r;
    if (!single(m, s, p, ep)) return NULL;
    s++;
    step(m, 1);
  }
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t what) {
  if (m->ncap >= MAX_CAPTURES) luaL_error(m->L, "too many captures");
  m->cap[m->ncap].start = s;
  m->cap[m->ncap].len = what;
  m->ncap++;
  const char *r = match(m, s, p);
  if (!r) m->ncap--;
  return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p) {
  int i = m->ncap - 1;
  while (i >= 0 && m->cap[i].len != CAP_OPEN) i--;
  if (i < 0) luaL_error(m->L, "invalid pattern capture");
  m->cap[i].len = s - m->cap[i].start;
  const char *r = match(m, s, p);
  if (!r) m->cap[i].len = CAP_OPEN;
  return r;
}

/* "%bxy" at p (p points at x). */
static const char *balanced(matcher *m, const char *s, const char *p) {
  if (p + 1 >= m->pat_end) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m->src_end || *s != p[0]) return NULL;
  int open = 1;
  const char *start = s;
  for (s++; s < m->src_end; s++) {
    if (*s == p[1]) {
      if (--open == 0) {
        step(m, (size_t)(s - start));
        return s + 1;
      }
    } else if (*s == p[0]) {
      open++;
    }
  }
  step(m, (size_t)(s - start));
  return NULL;
}

/* Index of the capture a back reference "%1".."%9" names; raises if there is none. */
static int capture_index(matcher *m, char digit) {
  int i = digit - '1';
  if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
    luaL_error(m->L, "invalid capture index %%%d", i + 1);
  return i;
}

static const char *backref(matcher *m, const char *s, char digit) {
  int i = capture_index(m, digit);
  ptrdiff_t len = m->cap[i].len;
  if (len < 0 || m->src_end - s < len) return NULL; /* a position never matches text */
  step(m, (size_t)len);
  return memcmp(m->cap[i].start, s, (size_t)len) == 0 ? s + len : NULL;
}

/* Matches the pattern from p against the subject from s; the end of the match or NULL.
 * Tail positions loop instead of recursing, so depth follows the pattern's nesting. */
static const char *match(matcher *m, const char *s, const char *p) {
  if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
  const char *r = NULL;
  for (;;) {
    step(m, 1);
    if (p >= m->pat_end) {
      r = s;
      break;
    }
    if (*p == '(') {
      r = p + 1 < m->pat_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                                             : open_capture(m, s, p + 1, CAP_OPEN);
      break;
    }
    if (*p == ')') {
      r = close_capture(m, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == m->pat_end) {
      r = s == m->src_end ? s : NULL;
      break;
    }
    if (*p == ESC && p[1] == 'b') {
      s = balanced(m, s, p + 2);
      if (!s) break;
      p += 4;
      continue;
    }
    if (*p == ESC && p[1] == 'f') {
      p += 2;
      if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
      const char *ep = class_end(m, p);
      unsigned char before = s == m->src ? 0 : (unsigned char)s[-1];
      unsigned char here = s < m->src_end ? (unsigned char)*s : 0;
      if (in_set(before, p, ep - 1) || !in_set(here, p, ep - 1)) break;
      p = ep;
      continue;
    }
    if (*p == ESC && isdigit((unsigned char)p[1])) {
      s = backref(m, s, p[1]);
      if (!s) break;
      p += 2;
      continue;
    }
    /* a single-character class, maybe with a repetition */
    const char *ep = class_end(m, p);
    char rep = ep < m->pat_end ? *ep : 0;
    bool hit = single(m, s, p, ep);
    if (rep == '?') {
      if (hit && (r = match(m, s + 1, ep + 1)) != NULL) break;
      p = ep + 1;
      continue;
    }
    if (rep == '+') {
      r = hit ? greedy(m, s + 1, p, ep) : NULL;
      break;
    }
    if (rep == '*') {
      r = greedy(m, s, p, ep);
      break;
    }
    if (rep == '-') {
      r = lazy(m, s, p, ep);
      break;
    }
    if (!hit) break;
    s++;
    p = ep;
  }
  m->depth++;
  return r;
}

/* ----------------------------------------------------------------------------------- */
/* Captures                                                                            */

/* Pushes capture i, or the whole match [s, e) when i is 0 and there are no captures. */
static void push_capture(matcher *m, int i, const char *s, const char *e) {
  if (i >= m->ncap) {
    if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(m->L, s, (size_t)(e - s));
    return;
  }
  ptrdiff_t len = m->cap[i].len;
  if (len == CAP_OPEN) luaL_error(m->L, "unfinished capture");
  if (len == CAP_POSITION)
    lua_pushinteger(m->L, (lua_Integer)(m->cap[i].start - m->src) + 1);
  else
    lua_pushlstring(m->L, m->cap[i].start, (size_t)len);
}

/* Pushes every capture (the whole match if none and `whole`); returns how many. */
static int push_captures(matcher *m, const char *s, const char *e, bool whole) {
  int n = m->ncap == 0 && whole ? 1 : m->ncap;
  luaL_checkstack(m->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(m, i, s, e);
  return n;
}

/* ----------------------------------------------------------------------------------- */
/* The library functions                                                               */

static luapat_charge_fn charge_of(lua_State *L) {
  luapat_charge_fn *f = lua_touserdata(L, lua_upvalueindex(1));
  return *f;
}

/* A position argument: 1-based, negative from the end, clipped to 1 below. */
static size_t start_index(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0) return 1;
  if (pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

static bool has_specials(const char *p, size_t lp) {
  for (size_t i = 0; i < lp; i++)
    if (strchr("^$*+?.([%-", p[i]) && p[i] != '\0') return true;
  return false;
}

static int find_or_match(lua_State *L, bool find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  luapat_charge_fn charge = charge_of(L);
  if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
    /* plain search: glibc's memmem is linear in the subject */
    charge(L, ls - init + 1);
    const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
    if (hit) {
      lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
      lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
      return 2;
    }
    luaL_pushfail(L);
    return 1;
  }
  matcher m;
  bool anchor = lp > 0 && *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  matcher_init(&m, L, s, ls, p, lp, charge);
  const char *at = s + init;
  do {
    matcher_reset(&m);
    const char *e = match(&m, at, p);
    if (e) {
      settle(&m);
      if (find) {
        lua_pushinteger(L, (lua_Integer)(at - s) + 1);
        lua_pushinteger(L, (lua_Integer)(e - s));
        return push_captures(&m, NULL, NULL, false) + 2;
      }
      return push_captures(&m, at, e, true);
    }
  } while (at++ < m.src_end && !anchor);
  settle(&m);
  luaL_pushfail(L);
  return 1;
}

static int l_find(lua_State *L) { return find_or_match(L, true); }
static int l_match(lua_State *L) { return find_or_match(L, false); }

/* gmatch's iterator state, a userdata; subject and pattern are anchored as upvalues. */
typedef struct gmatch_state {
  const char *at;        /* where the next search starts */
  const char *last;      /* end of the last match: an empty match there is skipped */
  const char *p;
  matcher m;
} gmatch_state;

static int gmatch_next(lua_State *L) {
  gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
  g->m.L = L;
  for (const char *at = g->at; at <= g->m.src_end; at++) {
    matcher_reset(&g->m);
    const char *e = match(&g->m, at, g->p);
    if (e && e != g->last) {
      g->at = g->last = e;
      settle(&g->m);
      return push_captures(&g->m, at, e, true);
    }
  }
  settle(&g->m);
  g->at = g->m.src_end + 1;
  return 0;
}

static int l_gmatch(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) init = ls + 1; /* past the end: no match, and no overflow */
  luapat_charge_fn charge = charge_of(L);
  lua_settop(L, 2);
  gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
  matcher_init(&g->m, L, s, ls, p, lp, charge);
  g->at = s + init;
  g->last = NULL;
  g->p = p;
  lua_pushcclosure(L, gmatch_next, 3); /* subject, pattern, state */
  return 1;
}

/* Appends the replacement of the match [s, e) to b; the replacement is argument 3. */
static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e, int type) {
  lua_State *L = m->L;
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    size_t lr;
    const char *r = lua_tolstring(L, 3, &lr);
    const char *end = r + lr;
    for (; r < end; r++) {
      if (*r != ESC) {
        luaL_addchar(b, *r);
        continue;
      }
      r++;
      if (r < end && *r == ESC) {
        luaL_addchar(b, ESC);
      } else if (r < end && *r == '0') {
        luaL_addlstring(b, s, (size_t)(e - s));
      } else if (r < end && isdigit((unsigned char)*r)) {
        push_capture(m, *r - '1', s, e);
        luaL_tolstring(L, -1, NULL);
        lua_remove(L, -2);
        luaL_addvalue(b);
      } else {
        luaL_error(L, "invalid use of '%c' in replacement string", ESC);
      }
    }
    step(m, lr);
    return;
  }
  if (type == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_captures(m, s, e, true);
    lua_call(L, n, 1);
  } else { /* table */
    push_capture(m, 0, s, e);
    lua_gettable(L, 3);
  }
  if (!lua_toboolean(L, -1)) { /* nil or false: keep the match */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  } else {
    luaL_addvalue(b);
  }
}

static int l_gsub(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int type = lua_type(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION ||
                          type == LUA_TTABLE,
                   3, "string/function/table");
  bool anchor = lp > 0 && *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  matcher m;
  matcher_init(&m, L, s, ls, p, lp, charge_of(L));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *at = s, *last = NULL;
  lua_Integer n = 0;
  while (n < max) {
    matcher_reset(&m);
    const char *e = match(&m, at, p);
    if (e && e != last) {
      n++;
      add_replacement(&m, &b, at, e, type);
      at = last = e;
    } else if (at < m.src_end) {
      luaL_addchar(&b, *at++);
    } else {
      break;
    }
    if (anchor) break;
  }
  settle(&m);
  luaL_addlstring(&b, at, (size_t)(m.src_end - at));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

void luapat_install(lua_State *L, int idx, luapat_charge_fn charge) {
  static const luaL_Reg fns[] = {
      {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
  idx = lua_absindex(L, idx);
  luapat_charge_fn *slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = charge;
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, idx, f->name);
  }
  lua_pop(L, 1);
}
