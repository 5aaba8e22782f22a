# Agentry Cloud - top-level entry points. Every target that builds or runs first makes sure the
# Debian packages are present (make deps is idempotent and fast when nothing is missing).
#
#   make build      ./build: the default configuration (RelWithDebInfo, -O2)
#   make test       what CI runs: build, then also compile (not run) build-release and
#                   build-clang, check the habits (make lint), then run every test of ./build
#                   through ctest, even when lint failed, so one run reports every problem. It
#                   installs what only tests need (deps.sh --test: clang, clang-format) on top of
#                   make deps.
#   make release    build-release: Release (-O3). GCC's optimizer-driven warnings
#                   (-Wformat-truncation, -Wstringop-*, -Wmaybe-uninitialized) appear only here.
#   make clang      build-clang: clang, Release. Skipped with a note if clang is not installed.
#   make test-asan  build-asan: Debug with ASan+UBSan, and every test run under it.
#   make lint       the include direction (hub/ and worker/ never include each other; common/
#                   includes neither, nor agentry/v1) and clang-format --dry-run on every C file
#                   of api/ hub/ worker/ common/ cmd/ tests/unit/ (deploy/lint/lint.sh). Like make
#                   test, it installs clang-format through deps.sh --test.
#   make format     rewrites those files in place with clang-format (.clang-format).
#   make install    builds build-release and installs agentry, agent-hub and agent-node (links) to
#                   $(DESTDIR)$(PREFIX)/bin and the docs to .../share/doc/agentry (PREFIX
#                   defaults to /usr/local: sudo make install, or make install PREFIX=$HOME/.local).
#   make uninstall  removes what make install put there (same PREFIX and DESTDIR).
#   make demo-cloud the whole cluster on this machine (docs/demo-cloud.md): PostgreSQL, etcd, a
#                   hub with mutual TLS and the dashboard, 3 nodes, and a team of agents; runs
#                   until Ctrl-C. Installs PostgreSQL and etcd first (deps.sh --cloud).
#   make deb        build-release/agentry_VERSION_ARCH.deb: the binary, the systemd units of
#                   deploy/systemd and their /etc/default files (deploy/deb/build.sh;
#                   docs/packaging.md).
#   make image      the container image agentry:VERSION from deploy/docker/Dockerfile with
#                   podman, else docker (IMAGE_TOOL=...; IMAGE_FLAGS=... adds build flags), the
#                   git revision passed in as AGENTRY_GIT_REV (docs/container.md).
#   make test-image builds the image with podman and smoke-tests it (a hub and a node container
#                   run a turn): 5-10 minutes on 2 cores, so make test only checks the Dockerfile
#                   statically and says it skipped this. Installs podman first (deps.sh --image).
# Each configuration has its own directory, configured once and then rebuilt incrementally.
BUILD         ?= build
RELEASE_BUILD ?= build-release
CLANG_BUILD   ?= build-clang
ASAN_BUILD    ?= build-asan
JOBS          ?= 2
CMAKE_ARGS    ?=
PREFIX        ?= /usr/local
DESTDIR       ?=
IMAGE_TOOL    ?= $(shell command -v podman || command -v docker)
IMAGE_FLAGS   ?=

# Targets run one at a time even under make -j: each cmake build is already parallel (-j$(JOBS)),
# and deps and deps-test must not run apt-get at once.
.NOTPARALLEL:

.PHONY: all deps deps-test build release clang clang-build test test-asan lint format demo bench \
	clean install uninstall demo-cloud deps-cloud deb image test-image deps-image

all: build

deps:
	@sh deploy/deps.sh

deps-test:
	@sh deploy/deps.sh --test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

$(RELEASE_BUILD)/CMakeCache.txt:
	cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

release: deps $(RELEASE_BUILD)/CMakeCache.txt
	cmake --build $(RELEASE_BUILD) -j$(JOBS)

$(CLANG_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(CLANG_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

clang-build: $(CLANG_BUILD)/CMakeCache.txt
	cmake --build $(CLANG_BUILD) -j$(JOBS)

# Checked when it runs, not when make reads this file: make test installs clang first.
clang: deps
	@if command -v clang >/dev/null 2>&1; then $(MAKE) --no-print-directory clang-build; \
	else echo "clang: not installed; skipping the clang build (make deps-test installs it)"; fi

# The extra configurations are only compiled: their point is the warnings (-Werror), and running
# the suite three times would triple CI time on a 2-core machine.
test: deps-test build release clang
	@lint=0; sh deploy/lint/lint.sh || lint=1; \
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) && \
	if [ $$lint = 1 ]; then echo "make test: the tests passed, but lint failed (see above)" >&2; exit 1; fi

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DAGENTRY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)

test-asan: deps-test $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

# No build needed: both read the sources only.
lint: deps-test
	@sh deploy/lint/lint.sh

format: deps-test
	@sh deploy/lint/lint.sh --fix

# A local hub + 3 nodes on the embedded SQLite store, running a sample agent and printing its trace.
demo: build
	sh deploy/local/demo.sh $(BUILD)/agentry

# PostgreSQL, etcd, a hub with mutual TLS and the dashboard, 3 nodes joined through etcd, and a
# team of agents with one approval; stays up for the dashboard until Ctrl-C.
demo-cloud: deps-cloud build
	sh deploy/local/demo_cloud.sh $(BUILD)/agentry

deps-cloud:
	@sh deploy/deps.sh --cloud

bench: build
	sh deploy/local/bench.sh $(BUILD)/agentry

# Only the binary is built: the tests are not installed, and the Release build's point here is speed.
install: deps $(RELEASE_BUILD)/CMakeCache.txt
	cmake --build $(RELEASE_BUILD) -j$(JOBS) --target agentry
	DESTDIR="$(DESTDIR)" cmake --install $(RELEASE_BUILD) --prefix "$(PREFIX)"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/agentry" "$(DESTDIR)$(PREFIX)/bin/agent-hub" \
		"$(DESTDIR)$(PREFIX)/bin/agent-node"
	rm -rf "$(DESTDIR)$(PREFIX)/share/doc/agentry"

# The package's binary is the Release build's, like make install's.
deb: deps $(RELEASE_BUILD)/CMakeCache.txt
	cmake --build $(RELEASE_BUILD) -j$(JOBS) --target agentry
	sh deploy/deb/build.sh $(RELEASE_BUILD) $(RELEASE_BUILD)

# The build context has no .git (.dockerignore), so the revision is found here and passed in.
image:
	@[ -n "$(IMAGE_TOOL)" ] || { echo "make image: neither podman nor docker is installed" >&2; exit 1; }
	version=$$(sed -n 's/^project(agentry VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt); \
	rev=$$(cmake -DSRC=. -DPRINT=1 -P cmd/agentry/version.cmake); \
	$(IMAGE_TOOL) build $(IMAGE_FLAGS) -f deploy/docker/Dockerfile -t agentry:$$version \
		--build-arg AGENTRY_GIT_REV=$$rev .

deps-image:
	@sh deploy/deps.sh --image

test-image: deps-image build
	cd $(BUILD) && AGENTRY_TEST_IMAGE=1 ctest --output-on-failure -R '^package/image'

clean:
	rm -rf $(BUILD) $(RELEASE_BUILD) $(CLANG_BUILD) $(ASAN_BUILD)
