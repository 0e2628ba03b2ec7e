# Fuzzing targets, included by the top-level Makefile. Each target sets itself up (tools/deps.sh fuzz).
#
#   make fuzz-tiny        libFuzzer fuzz_tiny for FUZZ_SECONDS (default 60; the input picks the mode),
#                         then every regression of corpus/regressions/; prints execs/s and coverage;
#                         on a crash exits non-zero with the saved file and the command that replays it
#   make fuzz             every harness for FUZZ_SECONDS each (same as fuzz-all), then the regressions
#   make fuzz-<harness>   one harness: fuzz-mixed, fuzz-modes, fuzz-mt, fuzz-options
#   make fuzz-afl         AFL++ builds of every harness (build/fuzz/afl-<variant>); fuzz/afl.sh runs them
#   make fuzz-campaign    fuzz/campaign.sh: each harness briefly, the tab-separated table for make verify
#   make mutants          the mutation self-test (verify/mutants/*.patch): table + "caught N/M"
#
# Variables: FUZZ_SECONDS (per harness), FUZZ_VARIANT (debug | hardened | release; default debug),
# FUZZ_OPTS (verify options, fz.h), FUZZ_MODE (force one mode), MUTANT_SECONDS, MUTANTS (names).

FUZZ_SECONDS ?= 60
FUZZ_VARIANT ?= debug
FUZZ_ALL := fuzz_tiny fuzz_mixed fuzz_modes fuzz_mt fuzz_options
FUZZ_BIN := build/fuzz/libfuzzer-$(FUZZ_VARIANT)

.PHONY: fuzz-tiny fuzz fuzz-all fuzz-mixed fuzz-modes fuzz-mt fuzz-options fuzz-afl fuzz-campaign \
        fuzz-build mutants fuzz-deps

# (Not the top-level deps-% pattern: pattern rules never run for .PHONY targets.)
fuzz-deps:
	@tools/deps.sh fuzz

fuzz-build: fuzz-deps
	@mkdir -p build/fuzz/logs
	@fuzz/build.sh --variant $(FUZZ_VARIANT) --out $(FUZZ_BIN) >build/fuzz/logs/build.log 2>&1 || \
	  { echo "fuzz: build failed (build/fuzz/logs/build.log):"; tail -20 build/fuzz/logs/build.log; exit 2; }

fuzz-tiny: fuzz-build
	@fuzz/run.sh --no-build --bin $(FUZZ_BIN) --variant $(FUZZ_VARIANT) --seconds $(FUZZ_SECONDS) fuzz_tiny; \
	  rc=$$?; fuzz/replay.sh --bin $(FUZZ_BIN) || rc=1; exit $$rc

fuzz fuzz-all: fuzz-build
	@fuzz/run.sh --no-build --bin $(FUZZ_BIN) --variant $(FUZZ_VARIANT) --seconds $(FUZZ_SECONDS) $(FUZZ_ALL); \
	  rc=$$?; fuzz/replay.sh --bin $(FUZZ_BIN) || rc=1; exit $$rc

fuzz-mixed fuzz-modes fuzz-mt fuzz-options: fuzz-build
	@fuzz/run.sh --no-build --bin $(FUZZ_BIN) --variant $(FUZZ_VARIANT) --seconds $(FUZZ_SECONDS) \
	  $(subst fuzz-,fuzz_,$@)

fuzz-afl: fuzz-deps
	@fuzz/build.sh --afl --variant $(FUZZ_VARIANT)

fuzz-campaign: fuzz-deps
	@fuzz/campaign.sh --table build/fuzz/campaign.txt

mutants: fuzz-deps
	@fuzz/mutants.sh
