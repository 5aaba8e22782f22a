# Agentry Cloud - top-level entry points. Every target that builds or runs first makes sure the
# Debian packages are present (make deps is idempotent and fast when nothing is missing).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= 2
CMAKE_ARGS ?=

.PHONY: all deps build test test-asan demo bench clean

all: build

deps:
	@sh deploy/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DAGENTRY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

# A local hub + 3 nodes on the embedded SQLite store, running a sample agent and printing its trace.
demo: build
	sh deploy/local/demo.sh $(BUILD)/agentry

bench: build
	sh deploy/local/bench.sh $(BUILD)/agentry

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
