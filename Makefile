# hakmem front door. Every target sets itself up: missing Debian packages are installed when run as
# root, otherwise the one apt-get line needed is printed.
#
#   make              build the release libraries (build/release/libhakmem.so, libhakmem.a)
#   make test         build release, hardened, debug, asan, tsan and run their test suites
#   make verify       the campaign: every variant and mode, every suite; one table and a verdict
#   make bench        hakmem vs glibc, mimalloc, jemalloc, tcmalloc, side by side
#   make stress       the stress programs' short modes (release preset)
#   make install      install the release build (PREFIX=/usr/local)

JOBS   ?= $(shell nproc)
PREFIX ?= /usr/local
# make bench: every peer, plus hakmem's other modes and the hardened variant as extra columns.
BENCH_ARGS ?= --modes minimal,balanced,tight,lean --variants --trace

.PHONY: all build test verify bench bench-harden-bits stress install clean deps-build deps-test deps-bench deps-verify

all: build

# Explicit rules: make skips pattern rules for .PHONY targets.
deps-build:
	@tools/deps.sh build
deps-test:
	@tools/deps.sh test
deps-bench:
	@tools/deps.sh bench
deps-verify:
	@tools/deps.sh verify

build: deps-build
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@echo "built: build/release/libhakmem.so (LD_PRELOAD it), build/release/libhakmem.a"

test: deps-test
	@HAK_TEST_JOBS=$(JOBS) tools/run-tests.sh

verify: deps-verify
	@python3 tools/hakmem-verify $(VERIFY_ARGS)

bench: deps-bench
	@bash bench/run.sh $(BENCH_ARGS)

# The cost of each hardened check alone (bench/harden_bits.sh).
bench-harden-bits: deps-bench
	@bash bench/harden_bits.sh $(HARDEN_BITS_ARGS)

stress: deps-test
	@cmake --preset release >/dev/null && cmake --build --preset release -j $(JOBS) >/dev/null
	@ctest --preset release -L stress -LE '^mode$$' -j $(JOBS)

install: build
	@cmake --install build/release --prefix $(PREFIX)

clean:
	rm -rf build

# Targets contributed by other parts of the tree (fuzzing: fuzz-tiny, mutants, ...).
-include fuzz/fuzz.mk
