# The two quick-start commands are `make demo` and `make test` (see README.md).
PREFIX ?= /opt/cni
CARGO ?= cargo

.PHONY: build release test lint bench install

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --workspace --bins

# Black-box tests exec the built binaries, so build them first.
test: build
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	bench/host-local.sh

# Installs the plugins where runtimes look for them (/opt/cni/bin by default).
install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 target/release/host-local $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 target/release/portmap $(DESTDIR)$(PREFIX)/bin/
