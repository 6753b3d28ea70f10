# The two quick-start commands are `make demo` and `make test` (see README.md); both need root
# and build everything inside their own network namespaces.
PREFIX ?= /opt/cni
CARGO ?= cargo
PLUGINS := bridge host-local portmap loopback

.PHONY: build release test test-vm lint demo bench bench-host-local bench-bridge bench-startup install deps-demo deps-test dist dist-check conformance fuzz-ci fuzz-long

build:
	$(CARGO) build --workspace --bins

# Release builds carry `git describe --tags` (or the crate version) in their about text and logs.
release:
	CNI_RS_VERSION=$$(tools/version.sh) $(CARGO) build --release --workspace --bins

# tools/deps.sh installs exactly the missing Debian packages (as root) or says what to install.
deps-demo:
	tools/deps.sh demo

deps-test:
	tools/deps.sh test

# Black-box tests exec the built binaries, so build them first; the demo is part of the tests.
test: deps-test build
	$(CARGO) test --workspace
	DEMO_PROFILE=debug demo/demo.sh

# The kernel-dependent suites again on each kernel in tools/vm/kernels (Debian's 6.1 LTS), in a
# qemu VM without a network device. Needs root; reuses the test executables `make test` built.
test-vm: build
	tools/vm/kernel-matrix.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd fuzz && $(CARGO) fmt --all -- --check

# Coverage-guided fuzzing (fuzz/, nightly + cargo-fuzz, installed by the script if missing).
# fuzz-ci: clippy on the targets, then each target for FUZZ_CI_SECS (20 s); fails on any crash.
# fuzz-long: each target to FUZZ_LONG_RUNS (1,000,000) executions: the README's figures.
fuzz-ci:
	cd fuzz && $(CARGO) +nightly clippy --all-targets -- -D warnings
	tools/fuzz.sh ci

fuzz-long:
	tools/fuzz.sh long

demo: deps-demo
	demo/demo.sh

# Static amd64/arm64 tarballs with checksums in dist/ (tools/dist.sh), and their checks:
# static-ness, layout, the black-box tests on the amd64 binaries, an arm64 smoke test under
# qemu, and a second build from a clean clone that must give byte-identical tarballs.
dist:
	tools/dist.sh

dist-check:
	tools/dist-check.sh

# Both benchmarks; bench-bridge needs root (it sandboxes itself with unshare --net --mount).
bench: bench-host-local bench-bridge

bench-host-local:
	bench/host-local.sh

bench-bridge:
	bench/bridge.sh

# Static (dist tarball) vs glibc vs reference: size, VERSION exec time, peak RSS.
bench-startup: dist
	bench/startup.sh

# Puts the plugins where runtimes look for them (/opt/cni/bin by default) and cnitool in bin/.
install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	for p in $(PLUGINS); do install -m 0755 target/release/$$p $(DESTDIR)$(PREFIX)/bin/; done
	install -D -m 0755 target/release/cnitool $(DESTDIR)/usr/local/bin/cnitool

# The differential fuzzer's long campaign against /usr/lib/cni (root; twin sandboxes).
# CONFORMANCE_REQUESTS requests per side; FUZZ_SEED picks the campaign (default: the time).
CONFORMANCE_REQUESTS ?= 20000
FUZZ_SEED ?= $(shell date +%s)
conformance: build
	FUZZ_SEED=$(FUZZ_SEED) FUZZ_REQUESTS=$(CONFORMANCE_REQUESTS) \
	  $(CARGO) test --test conformance -- --nocapture
