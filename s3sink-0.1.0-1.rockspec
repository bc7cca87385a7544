package = "s3sink"
version = "0.1.0-1"
-- The project's repository; a release is its tag v<version>. `luarocks make` in a
-- checkout builds that checkout and fetches nothing (README: Install).
source = {
  url = "git+https://github.com/s3sink/s3sink.git",
  tag = "v0.1.0",
}
description = {
  summary = "Streaming sink that batches rows into self-contained S3/MinIO objects",
  detailed = [[
    A C runtime with Lua 5.4 format and naming scripts: rows are formatted, buffered and
    uploaded as new objects (CSV, JSON Lines, or your own format) once an interval has passed.
  ]],
  homepage = "https://github.com/s3sink/s3sink",
  license = "Apache-2.0",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  CURL = { library = "curl" }, -- Debian keeps curl.h in a multiarch folder luarocks does not search
  OPENSSL = { header = "openssl/evp.h" },
  ZLIB = { header = "zlib.h" },           -- compression = "gzip"
  ZSTD = { header = "zstd.h" },           -- compression = "zstd"
}
build = {
  -- the Makefile lists the sources once, for the Lua module and the Python extension alike
  type = "make",
  build_target = "lua",
  build_variables = {
    CFLAGS = "$(CFLAGS)", LUA_INCDIR = "$(LUA_INCDIR)", LUA = "$(LUA)",
    -- warnings stay on, but a newer compiler's new warning must not fail an install
    WERROR = "",
  },
  install_target = "install",
  install_variables = { LIBDIR = "$(LIBDIR)" },
}
