# build.mk - how the C code is compiled, in one place. The Makefile includes it;
# bindings/python/setup.py and bindings/python/tests/conftest.py read it with
# tools/buildmk.py. Keep to plain `NAME := value` lines: no references to other
# variables, no conditionals, comments on lines of their own.

# C dialect, and the POSIX 2008 and glibc interfaces the runtime uses (strdup, memmem, flock, ...)
C_STD := -std=c11
C_DEFINES := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE

# Warnings are on in every build. -Werror only in the Makefile's builds (development, CI):
# a pip install with a newer compiler that warns about something new must still succeed.
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
WERROR := -Werror

# Only what a module must export is visible (luaopen_s3sink, PyInit__s3sink): the runtime's
# symbols stay inside each shared object, so two copies loaded in one process never mix.
VISIBILITY := -fvisibility=hidden

OPTIMIZE := -O2 -g

# ASan/UBSan builds (make asan, make asan-python, S3SINK_SANITIZE=1): compile and link flags
SANITIZE_OPTIMIZE := -O1 -g
SANITIZE := -fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# pkg-config packages. The Lua module takes Lua's symbols from the interpreter that loads
# it, so only the Python extension links LUA_PKG.
LUA_PKG := lua5.4
PKGS := libcurl openssl zlib libzstd
EXTRA_LIBS := -lpthread

# Sources, relative to the repository root
RUNTIME_DIR := runtime
PUBLIC_INCLUDE_DIR := runtime/include
# the Lua scripts embedded in the library (their paths are their names)
SCRIPT_GLOBS := formats/*.lua scripts/*/*.lua
