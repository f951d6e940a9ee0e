# mqtx — see README.md. `make` builds ./mqtx; `make check` is the test command.
.SUFFIXES:

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libpq librabbitmq rdkafka libnats yaml-0.1 libcrypto

WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS = -std=c11 $(WARN) -g -Ilib $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
CFLAGS ?= -O2
LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lm -lpthread
ASAN_FLAGS = -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC = $(sort $(shell find lib -name '*.c'))
CMD_SRC = $(sort $(wildcard cmd/*.c))
HDRS = $(shell find lib cmd -name '*.h')
SRC = $(LIB_SRC) $(CMD_SRC)
# BUILD: where objects go (several checkouts or people can build side by side).
BUILD ?= build
OBJ = $(SRC:%.c=$(BUILD)/release/%.o)
ASAN_OBJ = $(SRC:%.c=$(BUILD)/asan/%.o)
TEST_OBJ = $(SRC:%.c=$(BUILD)/test/%.o)
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/release/%.o)
ASAN_LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/asan/%.o)

MAN_SRC = $(wildcard man/*.scd)
MAN_OUT = $(MAN_SRC:.scd=)

HELPERS = tests/helpers/amqp_tool tests/helpers/kafka_mock tests/helpers/kafka_tool tests/helpers/nats_tool tests/helpers/tcp_proxy
UNIT = tests/unit/unit_tests
UNIT_SRC = $(wildcard tests/unit/*.c)
UNIT_DEF = tests/unit/tests.def

all: mqtx man

mqtx: $(OBJ)
	$(CC) $(CFLAGS) -o $@ $(OBJ) $(LIBS)

# Private binaries for side-by-side work: make BUILD=/tmp/x /tmp/x/bin/mqtx
$(BUILD)/bin/mqtx: $(OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(OBJ) $(LIBS)

$(BUILD)/bin/mqtx-test: $(TEST_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(LIBS)

$(BUILD)/bin/mqtx-asan: $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ASAN_FLAGS) -o $@ $(ASAN_OBJ) $(LIBS)

# Test build: same code plus failpoints (MQTX_FAILPOINTS); never installed.
mqtx-test: $(TEST_OBJ)
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(LIBS)

mqtx-asan: $(ASAN_OBJ)
	$(CC) $(ASAN_FLAGS) -o $@ $(ASAN_OBJ) $(LIBS)

$(BUILD)/release/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/test/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -DMQTX_FAILPOINTS -c -o $@ $<

$(BUILD)/asan/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(ASAN_FLAGS) -DMQTX_FAILPOINTS -c -o $@ $<

man: $(MAN_OUT)

man/%: man/%.scd
	@if command -v scdoc >/dev/null 2>&1; then scdoc < $< > $@; \
	else echo "scdoc not found: man pages not built (apt-get install scdoc)" >&2; fi

# The test list is generated from the TEST(name) lines, so a new test needs no registration.
$(UNIT_DEF): $(UNIT_SRC)
	grep -ho '^TEST([a-z_0-9]*)' $(UNIT_SRC) | sed 's/TEST(\(.*\))/X(\1)/' > $@

$(UNIT): $(UNIT_SRC) $(UNIT_DEF) $(LIB_OBJ) $(HDRS)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $(UNIT_SRC) $(LIB_OBJ) $(LIBS)

tests/unit/unit_tests-asan: $(UNIT_SRC) $(UNIT_DEF) $(ASAN_LIB_OBJ) $(HDRS)
	$(CC) $(BASE_CFLAGS) $(ASAN_FLAGS) -o $@ $(UNIT_SRC) $(ASAN_LIB_OBJ) $(LIBS)

# The tools share lib/base/util's UTF-8 check (the release objects; util needs error).
HELPER_LIB = $(BUILD)/release/lib/base/util.o $(BUILD)/release/lib/base/error.o

tests/helpers/amqp_tool: tests/helpers/amqp_tool.c $(HELPER_LIB) lib/base/util.h
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Ilib -o $@ $< $(HELPER_LIB) $(shell $(PKG_CONFIG) --cflags --libs librabbitmq)

tests/helpers/kafka_mock: tests/helpers/kafka_mock.c
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -o $@ $< $(shell $(PKG_CONFIG) --cflags --libs rdkafka)

tests/helpers/kafka_tool: tests/helpers/kafka_tool.c $(HELPER_LIB) lib/base/util.h
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Ilib -o $@ $< $(HELPER_LIB) $(shell $(PKG_CONFIG) --cflags --libs rdkafka)

tests/helpers/nats_tool: tests/helpers/nats_tool.c $(HELPER_LIB) lib/base/util.h
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Ilib -o $@ $< $(HELPER_LIB) $(shell $(PKG_CONFIG) --cflags --libs libnats)

tests/helpers/tcp_proxy: tests/helpers/tcp_proxy.c
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -o $@ $<

helpers: $(HELPERS)

BENCH_BIN = bench/bin/amqp_publisher bench/bin/pg_claim bench/bin/audit_gen
bench/bin/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -o $@ $< $(shell $(PKG_CONFIG) --cflags --libs librabbitmq libpq rdkafka)

deps:
	@sh tests/deps.sh

# The test command: packages, the format and layer checks (make
# format-check, tests/layout.sh), -Werror build, servers, unit + bats
# tests, then the same under ASan+UBSan. Stops what it started even on failure.
# The builds run one job per core (nproc); the tests run in two lanes.
check: deps
	@$(MAKE) --no-print-directory format-check
	@bash tests/layout.sh
	@$(MAKE) --no-print-directory -j$$(nproc) all mqtx-test mqtx-asan $(UNIT) tests/unit/unit_tests-asan helpers
	@bash tests/check.sh

check-asan: deps
	@$(MAKE) --no-print-directory -j$$(nproc) mqtx-asan tests/unit/unit_tests-asan helpers
	@MQTX_ASAN_ONLY=1 bash tests/check.sh

# The whole suite under valgrind memcheck too (about 40 minutes; not in CI).
check-valgrind: deps
	@$(MAKE) --no-print-directory -j$$(nproc) all mqtx-test mqtx-asan $(UNIT) tests/unit/unit_tests-asan helpers
	@MQTX_CHECK_VALGRIND=all bash tests/check.sh

demo: deps
	@$(MAKE) --no-print-directory mqtx helpers
	@bash tests/demo.sh

bench: deps
	@$(MAKE) --no-print-directory mqtx helpers $(BENCH_BIN)
	@bash bench/run.sh

# relays under chaos for SOAK_MINUTES (default 10): lost must be 0
soak: deps
	@$(MAKE) --no-print-directory mqtx helpers
	@bash tests/soak.sh

# libFuzzer harnesses (clang): FUZZ_SECONDS per harness, corpus in tests/fuzz/corpus
fuzz: deps
	@bash tests/fuzz/run.sh

install: mqtx man
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	cp mqtx $(DESTDIR)$(BINDIR)/mqtx
	for f in $(MAN_OUT); do case $$f in \
	  *.1) cp $$f $(DESTDIR)$(MANDIR)/man1/ ;; *.5) cp $$f $(DESTDIR)$(MANDIR)/man5/ ;; *.7) cp $$f $(DESTDIR)$(MANDIR)/man7/ ;; \
	esac; done
	mkdir -p $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	cp completions/mqtx.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/mqtx
	cp completions/_mqtx $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_mqtx
	cp completions/mqtx.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/mqtx.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mqtx $(DESTDIR)$(PREFIX)/share/bash-completion/completions/mqtx \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_mqtx $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/mqtx.fish
	for f in $(MAN_OUT); do rm -f $(DESTDIR)$(MANDIR)/man1/$${f#man/} $(DESTDIR)$(MANDIR)/man5/$${f#man/} $(DESTDIR)$(MANDIR)/man7/$${f#man/}; done

# Every C file of the project, formatted by .clang-format.
FORMAT_SRC = $(SRC) $(HDRS) $(sort $(wildcard tests/unit/*.[ch] tests/helpers/*.c tests/fuzz/*.c bench/*.c))
CLANG_FORMAT ?= clang-format

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

# Fails naming the files `make format` would change.
format-check:
	@bad=$$(for f in $(FORMAT_SRC); do $(CLANG_FORMAT) --dry-run --Werror $$f >/dev/null 2>&1 || echo $$f; done); \
	if [ -n "$$bad" ]; then echo "format-check: not formatted (run make format):" $$bad >&2; exit 1; fi

clean:
	rm -rf build bench/bin mqtx mqtx-test mqtx-asan $(MAN_OUT) $(UNIT) $(UNIT_DEF) tests/unit/unit_tests-asan $(HELPERS)

.PHONY: all man helpers deps check check-asan check-valgrind demo bench fuzz soak install uninstall format format-check clean
