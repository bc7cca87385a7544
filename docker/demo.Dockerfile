# The demo service of docker-compose.yml: the Python package built from this checkout
# (with Pathway and boto3), then bindings/python/examples/demo.py. Python 3.10, the
# oldest the package supports.
FROM python:3.10-slim-bookworm

# what the extension's build needs (README: Install)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /s3sink
# what setup.py reads from the repository's root, then the package
COPY build.mk ./
COPY runtime/ runtime/
COPY formats/ formats/
COPY scripts/ scripts/
COPY tools/buildmk.py tools/embed_scripts.lua tools/
COPY bindings/python/ bindings/python/
RUN pip install --no-cache-dir "./bindings/python[pathway]" boto3

CMD ["python", "bindings/python/examples/demo.py"]
