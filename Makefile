# pyhot: patch a running CPython process in place.
#
#   make                 build build/pyhot and build/pyhot-payload.so (and the
#                        libraries they come from: build/libpyhot-attach.a,
#                        attach/ with common/; build/libpyhot-cli.a, cli/)
#   make check           install missing Debian packages, build, run every test tier
#   make faults          the long fault campaign (pyhot killed mid-attach)
#   make bench           print the benchmark figures
#   make mutate          the mutation run (docs/mutation.md; not part of check)
#   make demo            start a real Flask service, attach, patch it, show the change
#   make install         PREFIX=/usr/local DESTDIR= (PYTHON=... for the pyhot package)
#   make SANITIZE=address,undefined   sanitizer build (the payload gets UBSan only)
#   make noopt           build without optimisation, for a debugger

ARCH      ?= $(shell uname -m)
CC        ?= cc
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib/pyhot
MANDIR    ?= $(PREFIX)/share/man
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
B         := build
# The harness that drives integration tests and benchmarks (Debian's python3
# with pytest); targets run on every interpreter the machine has.
HARNESS_PY ?= /usr/bin/python3

OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
	     -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wvla \
	     -Wno-unused-parameter -Wno-missing-field-initializers
ifneq ($(CI),)
WERROR    ?= -Werror
endif
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(WERROR) -MMD -MP

# Each component sees its own headers and those of the components below it:
# common/ for everyone; attach/ (with its architecture folder) for itself
# and cli/; the payload only common/ and its own. Tests see what they test.
INC_COMMON  := -Icommon
INC_ATTACH  := $(INC_COMMON) -Iattach -Iattach/arch/$(ARCH)
INC_CLI     := $(INC_ATTACH) -Icli
INC_PAYLOAD := $(INC_COMMON) -Ipayload -Ipayload/patch
INC_UNIT    := $(INC_CLI) -Ipayload
INC_LIVE    := $(INC_ATTACH)

ifneq ($(SANITIZE),)
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
# An ASan .so cannot be loaded into an uninstrumented Python: UBSan only.
ifneq ($(findstring undefined,$(SANITIZE)),)
PAYLOAD_SAN := -fsanitize=undefined
endif
endif

PKGS_CLI  := libelf json-c libunwind-ptrace
CLI_LIBS  := $(shell pkg-config --libs $(PKGS_CLI) 2>/dev/null || echo -lelf -ljson-c -lunwind-ptrace -lunwind-generic -lunwind)
CLI_INC   := $(shell pkg-config --cflags $(PKGS_CLI) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)
# The payload is built against one set of CPython headers, limited to the
# 3.8 stable ABI, and links no libpython: its Py* symbols resolve against the
# interpreter it is loaded into.
PY_CFLAGS ?= $(shell pkg-config --cflags python3 2>/dev/null || echo -I/usr/include/python3.11)

COMMON_SRC  := $(wildcard common/*.c)
ATTACH_SRC  := $(wildcard attach/*.c attach/arch/$(ARCH)/*.c)
CLI_SRC     := $(filter-out cli/main.c,$(wildcard cli/*.c))
PAYLOAD_SRC := $(wildcard payload/*.c payload/patch/*.c) common/err.c
# Payload files that are pure C (no Python), also linked into unit tests.
PAYLOAD_PURE := payload/jsonw.c payload/request.c

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
pic = $(patsubst %.c,$(B)/pic/%.o,$(1))

# attach/ is a library (with common/); the CLI is built on it. The unit
# tests link both, and the payload's pure C files.
ATTACH_LIB  := $(B)/libpyhot-attach.a
CLI_LIB     := $(B)/libpyhot-cli.a
PURE_LIB    := $(B)/tests/libpyhot-payload-pure.a
ATTACH_OBJS := $(call obj,$(COMMON_SRC) $(ATTACH_SRC))
CLI_OBJS    := $(call obj,$(CLI_SRC))
PAYLOAD_OBJS := $(call pic,$(PAYLOAD_SRC))
# A test build of attach/ with the fault hooks (-DPYHOT_TEST_HOOKS, see
# attach/attach_thread.h): the live tests and build/pyhot-test-hooks link
# it; build/pyhot never does.
HOOKS_LIB   := $(B)/tests/libpyhot-attach-hooks.a
HOOKS_OBJS  := $(patsubst %.c,$(B)/hooks/%.o,$(COMMON_SRC) $(ATTACH_SRC))
HOOKS_PYHOT := $(B)/pyhot-test-hooks

UNIT_TESTS  := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(wildcard tests/unit/test_*.c))
LIVE_TESTS  := $(patsubst tests/live/%.c,$(B)/tests/live/%,$(wildcard tests/live/test_*.c))
VICTIMS     := $(patsubst tests/victims/%.c,$(B)/tests/victims/%,$(filter-out tests/victims/lib%.c,$(wildcard tests/victims/*.c)))
# tests/victims/libNAME.c: small shared objects injected into C victims.
VICTIMS     += $(patsubst tests/victims/%.c,$(B)/tests/victims/%.so,$(wildcard tests/victims/lib*.c))
# The patch engine with a test entry point, loaded by ctypes into a Python
# process for fast in-process engine tests (tests/engine/shim.c).
ENGINE_SO   := $(B)/tests/pyhot-engine-test.so

.PHONY: all deps check check-unit check-live check-integration bench demo \
	install uninstall clean noopt faults mutate
.DEFAULT_GOAL := all

all: $(B)/pyhot $(B)/pyhot-payload.so

noopt:
	$(MAKE) OPT=-O0 all

deps:
	@scripts/setup.sh

# INC: the include folders of the component an object belongs to.
$(call obj,$(COMMON_SRC)): INC := $(INC_COMMON)
$(call obj,$(ATTACH_SRC)): INC := $(INC_ATTACH)
$(CLI_OBJS) $(call obj,cli/main.c): INC := $(INC_CLI)
$(call obj,$(PAYLOAD_PURE)) $(PAYLOAD_OBJS) $(call pic,tests/engine/shim.c): INC := $(INC_PAYLOAD)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(INC) $(CLI_INC) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(INC) $(PY_CFLAGS) -DPy_LIMITED_API=0x03080000 -DPYHOT_PAYLOAD \
		-fPIC -fvisibility=hidden $(CFLAGS) $(PAYLOAD_SAN) -c -o $@ $<

$(ATTACH_LIB): $(ATTACH_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/hooks/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(INC_ATTACH) $(CLI_INC) $(CFLAGS) $(SAN_FLAGS) -DPYHOT_TEST_HOOKS -c -o $@ $<

$(HOOKS_LIB): $(HOOKS_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $^

$(HOOKS_PYHOT): $(call obj,cli/main.c) $(CLI_LIB) $(HOOKS_LIB)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(CLI_LIBS)

$(CLI_LIB): $(CLI_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(PURE_LIB): $(call obj,$(PAYLOAD_PURE))
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/pyhot: $(call obj,cli/main.c) $(CLI_LIB) $(ATTACH_LIB)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(CLI_LIBS)

# -z nodelete: the payload is never unloaded (a pending call into an
# unloaded object would crash the target). The version script exports the
# boot symbol only; tests/integration checks it.
#
# The debug info goes to pyhot-payload.so.debug (found by gdb through the
# debug link): an attach copies the payload into the target with the
# borrowed thread stopped, and 1 MB of DWARF took 0.6 to 1.3 ms of that stop;
# the symbol table stays. Package builds leave it to their own stripping
# (SPLIT_DEBUG=0: dh_strip makes the -dbgsym package, the wheel strips).
SPLIT_DEBUG ?= 1
$(B)/pyhot-payload.so: $(PAYLOAD_OBJS) payload/exports.map
	$(CC) -shared $(CFLAGS) $(PAYLOAD_SAN) -o $@ $(PAYLOAD_OBJS) \
		-Wl,-z,nodelete -Wl,--version-script=payload/exports.map \
		-Wl,--build-id -pthread
ifeq ($(SPLIT_DEBUG),1)
	objcopy --only-keep-debug $@ $@.debug
	objcopy --strip-debug --add-gnu-debuglink=$@.debug $@
endif

# The pyhot Python package (python/pyhot/): its pure-Python files, and the
# payload itself as its extension module pyhot/_pyhot.abi3.so (the payload
# exports PyInit__pyhot), so that a program that imports pyhot and an agent
# injected by `pyhot attach` run the same file: the copy loaded second finds
# the first by its build id and defers to it (payload/copies.h).
# PYTHONPATH=build/python works from a checkout; `make install` puts the
# package into PYTHON_SITE, by default the purelib directory of $(PYTHON)
# (debian/rules gives Debian's /usr/lib/python3/dist-packages: a
# python3 on PATH may be any interpreter, a pyenv one under /root).
PYTHON    ?= python3
PYTHON_SITE ?=
PYPKG     := $(patsubst python/%,$(B)/python/%,$(wildcard python/pyhot/*.py)) \
	     $(B)/python/pyhot/_pyhot.abi3.so

all: $(PYPKG)

$(B)/python/pyhot/%.py: python/pyhot/%.py
	@mkdir -p $(@D)
	cp $< $@

$(B)/python/pyhot/_pyhot.abi3.so: $(B)/pyhot-payload.so
	@mkdir -p $(@D)
	cp $< $@

install: install-python

PYTHON_PURELIB = $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'

install-python: $(PYPKG)
	site="$(PYTHON_SITE)"; [ -n "$$site" ] || site=$$($(PYTHON_PURELIB)) || exit 1; \
	install -d "$(DESTDIR)$$site/pyhot" && install -m 0644 $(PYPKG) "$(DESTDIR)$$site/pyhot/"

.PHONY: install-python

$(B)/tests/unit/%: tests/unit/%.c $(CLI_LIB) $(PURE_LIB) $(ATTACH_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(INC_UNIT) $(CLI_INC) $(CFLAGS) $(SAN_FLAGS) -o $@ $< \
		$(CLI_LIB) $(PURE_LIB) $(ATTACH_LIB) $(CLI_LIBS) $(CMOCKA_LIBS)

$(B)/tests/live/%: tests/live/%.c $(HOOKS_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(INC_LIVE) $(CLI_INC) $(CFLAGS) $(SAN_FLAGS) -o $@ $< \
		$(HOOKS_LIB) $(CLI_LIBS) $(CMOCKA_LIBS) -pthread

# Victims are plain, uninstrumented programs, as targets are.
$(B)/tests/victims/%: tests/victims/%.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -o $@ $< -pthread -lm

$(B)/tests/victims/%.so: tests/victims/%.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -shared -fPIC -o $@ $< -pthread

# The engine test build has the apply's test hook (ops.h, -DPYHOT_TEST_HOOKS):
# an apply made to fail at a chosen op, for the undo tests. The payload
# never has it.
ENGINE_HOOK_OBJS := $(B)/tests/pic-hooks/payload/patch/ops.o $(B)/tests/pic-hooks/tests/engine/shim.o

$(B)/tests/pic-hooks/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(INC_PAYLOAD) $(PY_CFLAGS) -DPy_LIMITED_API=0x03080000 -DPYHOT_PAYLOAD \
		-DPYHOT_TEST_HOOKS -fPIC -fvisibility=hidden $(CFLAGS) $(PAYLOAD_SAN) -c -o $@ $<

$(B)/tests/pyhot-engine-test.so: $(filter-out $(call pic,payload/patch/ops.c),$(PAYLOAD_OBJS)) \
		$(ENGINE_HOOK_OBJS)
	$(CC) -shared $(CFLAGS) -o $@ $^ -Wl,-z,nodelete -pthread

check: deps
	$(MAKE) all $(UNIT_TESTS) $(LIVE_TESTS) $(VICTIMS) $(ENGINE_SO) $(HOOKS_PYHOT)
	$(MAKE) check-unit check-live check-integration

check-unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

check-live: $(LIVE_TESTS) $(VICTIMS) all
	@set -e; for t in $(LIVE_TESTS); do echo "== $$t"; \
		PYHOT_VICTIMS=$(B)/tests/victims timeout 300 $$t; done

check-integration: all $(VICTIMS) $(ENGINE_SO) $(HOOKS_PYHOT)
	PYHOT_BUILD=$(CURDIR)/$(B) $(HARNESS_PY) -m pytest -q -p no:cacheprovider tests/integration

# The long fault campaign: pyhot killed or stopped at hundreds of random
# instants and at every step (make check runs short versions).
faults: all $(VICTIMS) $(HOOKS_PYHOT)
	PYHOT_BUILD=$(CURDIR)/$(B) PYHOT_FAULT_KILLS=600 PYHOT_FAULT_LONG=1 \
	PYHOT_FAULT_STEP_SIGNALS=kill,stop PYHOT_FAULT_ROUNDS=200 \
		$(HARNESS_PY) -m pytest -q -s -p no:cacheprovider tests/integration/test_faults_*.py

# The mutation run: each bug of tests/mutations.toml planted in turn in a
# copy of the tree (this checkout is never changed), rebuilt, and the tests
# that should see it run; "score KILLED/VALID" at the end. 14.7 minutes
# on two quiet cores. MUTATE_ARGS="--only ID,ID", "--check" (anchors only), ...
mutate:
	$(HARNESS_PY) scripts/mutate.py $(MUTATE_ARGS)

bench: deps
	$(MAKE) all
	PYHOT_BUILD=$(CURDIR)/$(B) $(HARNESS_PY) scripts/bench.py $(BENCH_ARGS)

demo: deps
	$(MAKE) all
	PYHOT_BUILD=$(CURDIR)/$(B) scripts/demo.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(B)/pyhot $(DESTDIR)$(BINDIR)/pyhot
	install -m 0644 $(B)/pyhot-payload.so $(DESTDIR)$(LIBDIR)/pyhot-payload.so
	install -m 0644 man/pyhot.1 $(DESTDIR)$(MANDIR)/man1/pyhot.1
	install -d $(DESTDIR)$(COMPLETIONDIR)
	install -m 0644 cli/pyhot.bash-completion $(DESTDIR)$(COMPLETIONDIR)/pyhot

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pyhot $(DESTDIR)$(LIBDIR)/pyhot-payload.so \
		$(DESTDIR)$(MANDIR)/man1/pyhot.1 $(DESTDIR)$(COMPLETIONDIR)/pyhot
	site="$(PYTHON_SITE)"; [ -n "$$site" ] || site=$$($(PYTHON_PURELIB)) || exit 1; \
	rm -f $(addprefix "$(DESTDIR)$$site/pyhot/",$(notdir $(PYPKG))); \
	rmdir "$(DESTDIR)$$site/pyhot" 2>/dev/null || true

clean:
	rm -rf $(B)

# ---- packaging: version, static link, wheel, Debian package -------------
#
#   make wheel           $(B)/pkg/dist/pyhot-<version>-py3-none-manylinux_2_34_x86_64.whl
#   make deb             $(B)/pkg/dist/pyhot_<version>_amd64.deb
#   make STATIC_LINK=1   link libelf, json-c and libunwind (and zlib, lzma)
#                        statically: the command then needs glibc only
#
# Both packages hold the same payload and command, built once in $(B)/pkg
# with fixed flags (Debian's hardening, paths relative to the checkout); the
# wheel's command is linked statically, the Debian package's against
# Debian's shared libraries.
#
# The version is PYHOT_VERSION in cli/cli.h. The git revision and the build
# id of the payload are written into $(B)/gen/pyhot_build.h, which only
# cli/version.c includes: the command is compiled after its payload and
# refuses any other (cli_payload_check_build).
VERSION     := $(shell sed -n 's/^\#define PYHOT_VERSION "\(.*\)"/\1/p' cli/cli.h)
GIT_REV     ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
STATIC_LINK ?=
CLI_LIBS_SHARED := $(CLI_LIBS)
# Debian's libunwind-ptrace.a is not position-independent: the command is
# then linked as a plain (non-PIE) executable.
ifneq ($(STATIC_LINK),)
CLI_LIBS    := -no-pie -Wl,-Bstatic -lelf -ljson-c -lunwind-ptrace -lunwind-generic -lunwind \
	       -lz -llzma -Wl,-Bdynamic
endif
GEN_H       := $(B)/gen/pyhot_build.h
PKG_B       := $(B)/pkg
PKG_DIST    := $(PKG_B)/dist
PKG_CFLAGS  := -O2 -g -ffile-prefix-map=$(CURDIR)=. -fstack-protector-strong \
	       -fcf-protection -D_FORTIFY_SOURCE=2 -Wformat -Werror=format-security \
	       -Wl,-z,relro,-z,now
PKG_MAKE    := $(MAKE) B=$(PKG_B) STATIC_LINK=1 SANITIZE= SPLIT_DEBUG=0 GIT_REV='$(GIT_REV)' \
	       CFLAGS='$(PKG_CFLAGS)'

.PHONY: wheel deb pkg-build pkg-install FORCE

$(call obj,cli/version.c): INC += -I$(B)/gen
$(call obj,cli/version.c): $(GEN_H)
$(GEN_H): $(B)/pyhot-payload.so FORCE
	@scripts/gen-build-h.sh $< '$(GIT_REV)' $@
FORCE:

# The same command linked with the shared libraries, for the Debian package:
# Debian wants no embedded copies of libraries it ships (security updates
# reach them), and then the command can be position-independent too.
$(B)/pyhot-shared: $(call obj,cli/main.c) $(CLI_LIB) $(ATTACH_LIB)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(CLI_LIBS_SHARED)

# The payload and commands both packages hold; the wheel's needs glibc only.
pkg-build:
	+$(PKG_MAKE) all $(PKG_B)/pyhot-shared
	scripts/check-glibc-only.sh $(PKG_B)/pyhot

# debian/rules installs with this (PREFIX=/usr DESTDIR=...), then puts
# pyhot-shared in place of the static command.
pkg-install:
	+$(PKG_MAKE) install
	install -m 0755 $(PKG_B)/pyhot-shared $(DESTDIR)$(BINDIR)/pyhot

wheel: pkg-build
	scripts/build-wheel.sh $(PKG_B) $(VERSION) $(PKG_DIST)

deb: pkg-build
	+scripts/build-deb.sh $(VERSION) $(PKG_DIST)
# ---- end of packaging ----------------------------------------------------

-include $(shell find $(B) -name '*.d' 2>/dev/null)
