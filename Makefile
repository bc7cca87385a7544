# s3sink - build, test, demo. `make test` and `make demo` install what is missing first.
#
#   make            build the runtime library, the Lua module and the specs' test client into build/
#   make test       install dependencies, build, run every spec and test (also under ASan/UBSan)
#   make demo       install dependencies, start a local MinIO, run a Pathway pipeline
#   make deps       only install dependencies (Debian packages, MinIO via go install, Python venv)
#   make docs       regenerate docs/options.md from the runtime's option table

include build.mk

LUA        ?= lua5.4
CC         ?= cc
BUILD      ?= build
SAN        ?=
PYTHON     ?= python3
VENV       ?= .venv

MINIO_MODULE  := github.com/minio/minio
# MinIO's release tags (RELEASE.2025-…) are refused by the Go module proxy here; this is the
# proxy's pseudo-version of minio master at 7aac2a2c5b7c (2026-02-12), the newest it serves.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
CACHE_DIR     ?= $(HOME)/.cache/s3sink
MINIO_BIN     := $(CACHE_DIR)/minio-$(MINIO_VERSION)/minio

APT_PACKAGES := lua5.4 liblua5.4-dev lua-cjson lua-busted lua-system lua-filesystem libcurl4-openssl-dev libssl-dev openssl \
                zlib1g-dev libzstd-dev zstd gzip pkg-config make gcc git \
                luarocks docker-compose
# luarocks: spec/luarocks_spec.lua installs the rock into a temporary tree; docker-compose:
# bindings/python/tests/test_compose.py validates docker-compose.yml (no Docker engine needed)

# compile settings shared with the Python build: build.mk
OPT       := $(if $(SAN),$(SANITIZE_OPTIMIZE) $(SANITIZE),$(OPTIMIZE))
CFLAGS    ?=
ALL_CFLAGS = $(C_STD) $(C_DEFINES) $(WARN) $(WERROR) $(VISIBILITY) -fPIC $(OPT) $(CFLAGS)
LUA_INCDIR ?=
CPPFLAGS  := -I$(PUBLIC_INCLUDE_DIR) -I$(RUNTIME_DIR) -Ibindings/lua -I$(BUILD)/gen $(if $(LUA_INCDIR),-I$(LUA_INCDIR)) \
             $(shell pkg-config --cflags $(LUA_PKG) $(PKGS) 2>/dev/null)
LIBS      := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(EXTRA_LIBS)

RUNTIME_SRC := $(wildcard $(RUNTIME_DIR)/*.c)
LUAMOD_SRC  := $(wildcard bindings/lua/*.c)
SCRIPTS     := $(sort $(wildcard $(SCRIPT_GLOBS)))
RUNTIME_OBJ := $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/bundled.o
LUAMOD_OBJ  := $(LUAMOD_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS     := $(wildcard $(RUNTIME_DIR)/*.h $(PUBLIC_INCLUDE_DIR)/*.h bindings/lua/*.h)

.PHONY: all lib lua testclient core-bench docs install print-minio-bin deps deps-apt deps-minio deps-python python test demo clean asan asan-python

all: lua testclient

lib: $(BUILD)/libs3sink.a
lua: $(BUILD)/s3sink.so
testclient: $(BUILD)/s3sink_testclient.so

$(BUILD)/gen/bundled.c: tools/embed_scripts.lua $(SCRIPTS)
	@mkdir -p $(dir $@)
	$(LUA) tools/embed_scripts.lua $@ $(SCRIPTS)

$(BUILD)/obj/gen/bundled.o: $(BUILD)/gen/bundled.c $(RUNTIME_DIR)/bundled.h build.mk
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(ALL_CFLAGS) $(CPPFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(HEADERS) build.mk
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(ALL_CFLAGS) $(CPPFLAGS) -c $< -o $@

$(BUILD)/libs3sink.a: $(RUNTIME_OBJ)
	$(AR) rcs $@ $^

# The Lua module gets its Lua symbols from the interpreter that loads it.
$(BUILD)/s3sink.so: $(LUAMOD_OBJ) $(BUILD)/libs3sink.a
	$(CC) -shared $(OPT) -o $@ $(LUAMOD_OBJ) $(BUILD)/libs3sink.a $(LIBS)

# The specs' S3 client (require "s3sink_testclient"): a module of its own, on the runtime's
# private s3client, so the shipped s3sink.so carries no test-only operations.
$(BUILD)/s3sink_testclient.so: $(BUILD)/obj/spec/support/s3sink_testclient.o \
                               $(BUILD)/obj/bindings/lua/lua_util.o $(BUILD)/libs3sink.a
	$(CC) -shared $(OPT) -o $@ $^ $(LIBS)

# The core's per-row throughput driver (bench/core_bench.c; run it under tools/with-minio).
core-bench: $(BUILD)/core_bench

$(BUILD)/core_bench: $(BUILD)/obj/bench/core_bench.o $(BUILD)/libs3sink.a
	$(CC) $(OPT) -o $@ $^ $(shell pkg-config --libs $(LUA_PKG) 2>/dev/null) $(LIBS) -lm

# LuaRocks (`luarocks make`) passes LIBDIR.
LIBDIR ?= /usr/local/lib/lua/5.4
install: lua
	install -D -m 755 $(BUILD)/s3sink.so $(DESTDIR)$(LIBDIR)/s3sink.so

asan:
	$(MAKE) BUILD=build/asan SAN=1 all

# The Python package built with ASan/UBSan into build/asan/python (own object folder, so
# sanitized and plain objects never mix); the tests use it through S3SINK_PY_BUILD.
asan-python: deps-python
	cd bindings/python && S3SINK_SANITIZE=1 $(abspath $(VENV))/bin/python setup.py -q \
	  build_ext -b $(abspath build/asan/python) -t $(abspath build/asan/python-obj)
	cp bindings/python/s3sink/*.py bindings/python/s3sink/*.pyi bindings/python/s3sink/py.typed \
	  build/asan/python/s3sink/

# ---------------------------------------------------------------------------------------
# Dependencies: each step does nothing when its result is already there.

deps: deps-apt deps-minio deps-python

deps-apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

deps-minio: $(MINIO_BIN)

$(MINIO_BIN):
	@command -v go >/dev/null || { echo "Go is needed to build MinIO (go install); install Go >= 1.24" >&2; exit 1; }
	@echo "building MinIO $(MINIO_VERSION) with go install (first time only, several minutes)"
	GOBIN=$(dir $@) GOFLAGS=-mod=mod go install $(MINIO_MODULE)@$(MINIO_VERSION)

deps-python: $(VENV)/.deps-ok

$(VENV)/.deps-ok: bindings/python/requirements-test.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r bindings/python/requirements-test.txt
	touch $@

# ---------------------------------------------------------------------------------------

# The Python package (extension built from runtime/ and the bundled scripts), installed
# editable into the venv: the tests rebuild it in place when a source is newer.
python: deps-python
	$(VENV)/bin/pip install -q --no-build-isolation --no-deps -e ./bindings/python

test: deps
	$(MAKE) all
	$(MAKE) asan
	$(MAKE) python
	$(MAKE) asan-python
	MINIO_BIN=$(MINIO_BIN) VENV=$(VENV) LUA=$(LUA) tools/run-tests

demo: deps
	$(MAKE) python
	MINIO_BIN=$(MINIO_BIN) tools/with-minio $(VENV)/bin/python bindings/python/examples/demo.py

# docs/options.md is generated from the runtime's option table (spec/options_spec.lua
# checks that it is up to date).
docs: lua
	S3SINK_CPATH=$(BUILD) $(LUA) tools/options_doc.lua > docs/options.md

clean:
	rm -rf build

print-minio-bin:
	@echo $(MINIO_BIN)

# ---------------------------------------------------------------------------------------
# make bench: the benchmark (tools/bench/bench.py) under one throw-away MinIO; writes
# docs/benchmarks.md and docs/benchmarks.png. Sizes and repetitions: BENCH_* variables
# (listed in docs/benchmarks.md). Not a test: nothing fails on speed.

.PHONY: bench deps-bench

deps-bench: $(VENV)/.bench-deps-ok

$(VENV)/.bench-deps-ok: $(VENV)/.deps-ok bindings/python/requirements-bench.txt
	$(VENV)/bin/pip install -q -r bindings/python/requirements-bench.txt
	touch $@

bench: deps deps-bench
	$(MAKE) python
	MINIO_BIN=$(MINIO_BIN) tools/with-minio $(VENV)/bin/python tools/bench/bench.py
