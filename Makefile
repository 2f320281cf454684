# The two commands of the README: `make run` and `make test`. Everything else is a helper.
#
# `make test` is what CI runs (.ci/run: a bare Debian 12 machine with 2 cores). Two trees:
#   build/      gcc, RelWithDebInfo: smtpsd, smtpsctl, the benches; `make run` uses it. Its
#               CTest holds one entry per test (~1,490 unit, ~450 integration, 24 sanitized
#               groups), the summary CI counts. With SMTPSD_SANITIZER_TREE=build-san it runs
#               that tree's unit_tests, once, in the entry unit_run (tests/unit_run/run.py),
#               and builds none of its own (`cmake --build build --target unit_tests` does),
#               and the groups of tests/integration/sanitized_groups.txt against that tree's
#               smtpsd (the entries sanitized.<group>).
#   build-san/  clang 16, -O0, ASan + UBSan + libFuzzer coverage. Built there: the *_fuzz
#               targets, unit_tests, and smtpsd/smtpsctl.
# Steps, in order: deps (installs what is missing; a no-op once installed), build/ and the
# fuzzers, unit_tests, smtpsd and smtpsctl of build-san/ at -j $(JOBS), then the release
# CTest at -j $(TEST_JOBS) (more than the cores: integration tests mostly wait on sockets;
# the few that assert timings or generate load run alone, RUN_SERIAL), the sanitized unit and
# server tests among its entries, and the fuzz smoke, FUZZ_JOBS targets at a time for
# FUZZ_SECONDS each, beside CTest at nice 19 (FUZZ_OVERLAP=0: after it).
# README.md ("Building and testing") gives the time of each step.
BUILD      ?= build
BUILD_SAN  ?= build-san
JOBS       ?= $(shell nproc)
TEST_JOBS  ?= 4
DEV_DIR    ?= var/dev
FUZZ_SECONDS ?= 10
FUZZ_JOBS  ?= 2
FUZZ_OVERLAP ?= 1
TEST_BUDGET ?= 1200
SAN_CXX    ?= clang++-16
SAN_LD     ?= /usr/bin/ld.lld-16

.PHONY: all deps build install deb run test test-steps check-layers test-release test-slow testssl-live test-asan san-build sanitizer-tree fuzz fuzz-smoke format format-check clean

all: build

deps:
	@./scripts/install-deps.sh

# Debug information as line tables only (-g1): stack traces and profiles keep their file and
# line, and the tree compiles about a fifth faster than with full -g (a CLI11 file: 8.0 s
# against 10.4 s), which `make test` spends twice a clean build.
# The unit tests it runs, and the smtpsd of its sanitized entries, are build-san/'s (above).
SANITIZER_TREE = SMTPSD_SANITIZER_TREE:PATH=$(abspath $(BUILD_SAN))
$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -D$(SANITIZER_TREE)

# A build/ configured before it took its tests from build-san/ (8 December 2026) is given the
# setting, so that `make test` there does not lose the sanitized tests.
sanitizer-tree: $(BUILD)/build.ninja
	@grep -qx '$(SANITIZER_TREE)' $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -D$(SANITIZER_TREE)

# The compilers get transparent huge pages (HUGE_PAGES=0: not): on this project's 2-core
# virtual machines a page fault costs some 9 us, and a compiler touches each page of its
# memory once. gcc maps its own heap, so an LD_PRELOAD library marks those mappings
# (scripts/huge-pages-preload.c); clang and the linkers allocate with malloc, which glibc
# marks itself when asked (GLIBC_TUNABLES). On 7 December 2026 the release tree built in
# 205 s instead of 232 s, the sanitizer tree in 192 s instead of 241 s. Only the build
# commands run with them (and what they run: the listing of the unit tests after a link),
# never a test.
HUGE_PAGES ?= 1
ifeq ($(HUGE_PAGES),1)
HUGE_PAGES_SO = $(BUILD)/huge-pages-preload.so
HUGE_PAGES_MALLOC = GLIBC_TUNABLES=$${GLIBC_TUNABLES:+$$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1
HUGE_PAGES_GCC = $(HUGE_PAGES_MALLOC) LD_PRELOAD=$${LD_PRELOAD:+$$LD_PRELOAD:}$(abspath $(HUGE_PAGES_SO))
endif

$(BUILD)/huge-pages-preload.so: scripts/huge-pages-preload.c | $(BUILD)/build.ninja
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

build: deps sanitizer-tree $(HUGE_PAGES_SO)
	$(HUGE_PAGES_GCC) cmake --build $(BUILD) -j $(JOBS)

# `make install` (PREFIX=/usr/local, DESTDIR for staging): README "Running in production"
# lists what goes where. The programs are stripped on the way.
PREFIX ?= /usr/local
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX) --strip

# `make deb`: smtpsd, smtpsd-mta and smtpsd-dbgsym in $(DEB_DIR), from build/ as it is
# (scripts/build-deb.sh; lintian-clean, tests/integration/test_package.py installs it).
DEB_DIR ?= $(BUILD)/deb
deb: build
	./scripts/build-deb.sh $(BUILD) $(DEB_DIR)

run: build
	$(BUILD)/smtpsd dev --dir $(DEV_DIR)

# The time guard: everything after installing the packages must end within TEST_BUDGET
# seconds (the 2-core machine of README "Building and testing" takes about 15 minutes), or
# `make test` fails even when every test passed; it prints its time and the ten slowest
# tests, so that a change which makes it slower says so at once.
test: deps
	@start=$$(date +%s); $(MAKE) --no-print-directory test-steps; status=$$?; \
	  elapsed=$$(( $$(date +%s) - start )); \
	  echo "make test: $$elapsed s of its $(TEST_BUDGET) s budget"; \
	  if [ $$status -ne 0 ]; then exit $$status; fi; \
	  if [ $$elapsed -gt $(TEST_BUDGET) ]; then \
	    echo "make test: FAILED: over its time budget (TEST_BUDGET=$(TEST_BUDGET) s)"; exit 1; fi
# Both trees are built before the release CTest starts, so that no test competes with a
# compiler.
test-steps: check-layers build fuzz san-build
	FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_OVERLAP=$(FUZZ_OVERLAP) \
	  ./scripts/ctest-with-fuzz-smoke.sh $(BUILD) $(TEST_JOBS) $(BUILD_SAN) $(FUZZ_SECONDS)

# The layer table of docs/architecture.md against every #include of src/ (a second seconds).
check-layers:
	./scripts/check-layers

# Every test of the release tree (unit and integration), one CTest entry each.
test-release: build san-build
	cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)

# The tests labelled slow, which `make test` leaves out: testssl.sh against the implicit TLS
# and STARTTLS ports (40 s to 220 s each, tests/CMakeLists.txt).
test-slow: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -L slow

# testssl.sh live against each weak server the probe's tests build (weak_targets.py), its
# findings written to tests/data/testssl/<target>.json (the fixtures test_testssl_fixtures.py
# and the probe tests compare with, in `make test`); `make test-slow` only compares them.
# 40 s to 110 s a target; review the diff and the mapping in testssl_fixtures.py.
testssl-live: build
	cd $(BUILD) && TESTSSL_REFRESH=1 ctest --output-on-failure -j 2 -R 'integration\.test_testssl_live\.'

# At -O0: with ASan, UBSan and fuzzer coverage clang spends 3.6 times as long on a layer at
# -O1 (the queue's unity unit: 37.7 s against 10.5 s), and the tree's tests barely notice
# (on 7 December 2026: the fuzzers built in 73 s instead of 172 s, everything in 241 s
# instead of 352 s; the unit shards took 44 s instead of 41 s, the sanitized server tests
# 57 s instead of 49 s). The fuzz smoke, 10 s a target, runs fewer inputs at -O0: it is a
# smoke; longer fuzzing (docs/testing.md) can use a tree of its own at -O1.
# Linked by LLVM's lld: GNU ld took 17.4 s for the instrumented unit_tests, 7.1 s for smtpsd
# and 6.6 s for smtpsctl, lld 3.4, 1.5 and 1.3 s (7 December 2026), and the links are the end
# of the build, when the other core has nothing left to compile.
$(BUILD_SAN)/build.ninja: | deps
	cmake -S . -B $(BUILD_SAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=$(SAN_CXX) \
	  -DCMAKE_CXX_FLAGS_DEBUG="-gline-tables-only -O0" -DSMTPSD_SANITIZE=ON -DSMTPSD_FUZZ=ON \
	  -DCMAKE_EXE_LINKER_FLAGS="--ld-path=$(SAN_LD)" -DSMTPSD_UNIT_SHARDS=$(JOBS)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, the binary in $(JOBS) shards;
# then smtpsd itself, linked in the same tree, against real clients: a representative subset
# of the integration tests (tests/integration/sanitized_groups.txt lists it), the entries
# sanitized.<group> of build/'s CTest (build/ configured, not built). `make test` runs both
# in build/'s CTest instead (unit_run and sanitized.<group>), where CI's summary counts them.
test-asan: san-build sanitizer-tree
	cd $(BUILD_SAN) && ctest --output-on-failure -j $(JOBS) -L unit
	cd $(BUILD) && ctest --output-on-failure -j $$(( $(JOBS) + 2 )) -L sanitized

san-build: deps $(BUILD_SAN)/build.ninja
	$(HUGE_PAGES_MALLOC) cmake --build $(BUILD_SAN) -j $(JOBS) --target unit_tests smtpsd smtpsctl

# The libFuzzer targets, in the same tree (they share its instrumented libraries).
fuzz: deps $(BUILD_SAN)/build.ninja
	$(HUGE_PAGES_MALLOC) cmake --build $(BUILD_SAN) -j $(JOBS) --target fuzzers

# A short libFuzzer run of every target, seeded from tests/dialogs.
fuzz-smoke: fuzz
	FUZZ_JOBS=$(FUZZ_JOBS) ./scripts/fuzz-smoke.sh $(BUILD_SAN) $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
