# SPDX-License-Identifier: GPL-2.0-only
#
# dm-chain: device-mapper target for live disk-image chains, and chainadm.
#
#   make                 build kernel/dm-chain.ko (W=1) and userspace/chainadm
#   make check           the test suite: deps, build, host tests, guest tests
#   make demo            boot a guest and walk through a scenario
#   make stress          the long forms of the tests that have one
#                        (STRESS_TESTS) on KERNELS, one guest at a time
#   make bench           benchmarks in one guest: dm-chain against dm-linear,
#                        dm-snapshot, dm-thin and qcow2 (build/bench/<date>-<krel>/)
#   make fuzz            the libFuzzer targets of tests/fuzz, FUZZ_SECONDS
#                        each, one after another (crashes: build/fuzz/crashes/)
#   make soak            a chain in real use for SOAK_MINUTES on each kernel
#                        of KERNELS, hard power-offs every few minutes
#                        (build/soak/<date>-<krel>.*/summary)
#   make shell           interactive shell in a guest
#   make install         module into /lib/modules/<kver>/updates, chainadm,
#                        its man page, bash completion and the systemd
#                        units that assemble /etc/chaintab at boot
#                        (install-userspace: all but the module, for DKMS)
#
# Variables: KVER (kernel series or release, default 6.1: Debian 12's own
# kernel; 6.12 selects Debian's 6.12 LTS), KDIR (kernel build tree,
# overrides KVER), KERNELS (kernels `make check` boots; default $(KVER),
# and "6.1 6.12" when CI=true), TESTS (names, e.g. TESTS=smoke), C=1
# (sparse), KVM=1 (guest under KVM instead of TCG), DESTDIR, PREFIX, BASHCOMPDIR,
# UNITDIR (/etc/systemd/system);
# for make bench: BENCH_SIZE (MiB, 256), BENCH_RUNTIME (s per fio run, 5),
# BENCH_DEPTHS ("1 4 16 64"), BENCH_JOB_DEPTH (4), BENCH_JOB_SIZE (MiB, 1024),
# BENCH_SECTIONS ("io jobs fg bw mem scale"), BENCH_SCALE_SIZES (GiB,
# "64 1024 16384"), BENCH_OUT, GUEST_MEM (5G);
# for make stress: CRASH_STATES (50000), CRASH_SEED, RACE_SEED,
# RESTART_ROUNDS (10), FM_ROUNDS (4), FM_SEED, FUZZ_INPUTS (5000),
# FUZZ_SEED (see README.md);
# for make fuzz: FUZZ_SECONDS (600 per target), FUZZ_TARGETS, FUZZ_SEED;
# for make soak: SOAK_MINUTES (60).

KVER ?= 6.1
# Never uname -r: the host's running kernel is not the one we test on.
KVER_FULL = $(shell tools/kver $(KVER))
KDIR ?= /lib/modules/$(KVER_FULL)/build
KREL = $(shell sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' $(KDIR)/include/generated/utsrelease.h 2>/dev/null)

ifeq ($(CI),true)
KERNELS ?= 6.1 6.12
else
KERNELS ?= $(KVER)
endif

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# systemd looks here for units an administrator installs.
UNITDIR ?= /etc/systemd/system
UNITS := chainadm-assemble.service chainadm-assemble-netdev.service
INSTALL_MOD_DIR ?= updates

.PHONY: all module modules-all userspace progs check stress demo bench shell deps \
	fuzz soak install install-userspace units uninstall clean help

all: module userspace progs

help:
	@sed -n '3,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

module:
	@test -e "$(KDIR)/Makefile" || { \
		echo "No kernel build tree for KVER=$(KVER) (KDIR=$(KDIR)); run tools/deps $(KVER)" >&2; \
		exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules W=1
	$(MAKE) -C $(KDIR) M=$(CURDIR)/tests/kmod modules W=1

# The module (and the test-only tests/kmod/*.ko) for every kernel in KERNELS other than the in-tree build's,
# each in build/<release>/ (a tree of links to the sources), where the
# guest tests look for it.
modules-all: module
	@set -e; for k in $(KERNELS); do \
		rel=$$(tools/kver $$k); \
		[ "$$rel" != "$(KREL)" ] || continue; \
		d=build/$$rel; \
		mkdir -p $$d/kernel; \
		find $$d -type l -delete; \
		ln -s $(CURDIR)/Kbuild $$d/Kbuild; \
		for f in kernel/*.c kernel/*.h kernel/Kbuild kernel/Makefile; do \
			case $$f in *.mod.c) continue ;; esac; \
			[ -e "$$f" ] && ln -s $(CURDIR)/$$f $$d/$$f; done; \
		if [ -d include ]; then cp -as $(CURDIR)/include $$d/; fi; \
		echo "  MODULE  $$d/kernel/dm-chain.ko"; \
		$(MAKE) -C /lib/modules/$$rel/build M=$(CURDIR)/$$d modules W=1; \
		mkdir -p $$d/tests/kmod; \
		for f in tests/kmod/*.c tests/kmod/Kbuild; do \
			case $$f in *.mod.c) continue ;; esac; \
			ln -s $(CURDIR)/$$f $$d/$$f; done; \
		echo "  MODULE  $$d/tests/kmod/dm-hold.ko chain-inject.ko"; \
		$(MAKE) -C /lib/modules/$$rel/build M=$(CURDIR)/$$d/tests/kmod modules W=1; \
	done

userspace:
	$(MAKE) -C userspace

progs:
	$(MAKE) -C tests

deps:
	tools/deps $(KERNELS)

# The one test command (see README.md).
check:
	tools/deps $(KERNELS)
	$(MAKE) all
	$(MAKE) modules-all
	KERNELS="$(KERNELS)" TESTS="$(TESTS)" tests/run_tests.sh

# The long forms (STRESS=1) of the tests that have one; see README.md.
# crash_states explores CRASH_STATES states per kernel; each guest
# gets a time limit to match.  CRASH_SEED=N replays a run.
STRESS_TESTS ?= race_stress crash_states jobs_restart jobs_fault_matrix \
		chain_model crash_logwrites fuzz_ctr scale
CRASH_STATES ?= 50000
stress:
	tools/deps $(KERNELS)
	$(MAKE) all
	$(MAKE) modules-all
	STRESS=1 CRASH_STATES=$(CRASH_STATES) CRASH_SEED="$(CRASH_SEED)" \
		FUZZ_SEED="$(FUZZ_SEED)" \
		TEST_TIMEOUT=$$(( $(CRASH_STATES) + 3600 )) GUEST_PARALLEL=0 \
		KERNELS="$(KERNELS)" tests/run_tests.sh $(STRESS_TESTS)

demo:
	tools/deps $(KVER)
	$(MAKE) all
	KVER=$(KVER) tools/demo

# One guest boot on KVER; see Documentation/dm-chain-bench.rst.
bench:
	tools/deps $(KVER)
	$(MAKE) all
	$(MAKE) modules-all KERNELS="$(KVER)"
	KVER=$(KVER) BENCH_SIZE="$(BENCH_SIZE)" BENCH_RUNTIME="$(BENCH_RUNTIME)" \
		BENCH_DEPTHS="$(BENCH_DEPTHS)" BENCH_JOB_DEPTH="$(BENCH_JOB_DEPTH)" \
		BENCH_JOB_SIZE="$(BENCH_JOB_SIZE)" BENCH_SECTIONS="$(BENCH_SECTIONS)" \
		BENCH_SCALE_SIZES="$(BENCH_SCALE_SIZES)" \
		BENCH_OUT="$(BENCH_OUT)" tools/bench/run

# Every fuzz target for FUZZ_SECONDS, one at a time, from its seeds and
# what earlier runs kept in build/fuzz/corpus/ (README.md, "Fuzzing").
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= fuzz_header fuzz_entries fuzz_job fuzz_layer
fuzz:
	tools/deps $(KVER)
	$(MAKE) -C tests/fuzz
	FUZZ_SEED="$(FUZZ_SEED)" tests/fuzz/run-fuzz.sh --seconds $(FUZZ_SECONDS) \
		$(FUZZ_TARGETS)

# One soak per kernel in KERNELS, all at once (a soak is bound by time,
# not by CPU); see README.md, "Soak".
SOAK_MINUTES ?= 60
soak:
	tools/deps $(KERNELS)
	$(MAKE) all
	$(MAKE) modules-all
	@set -e; pids=; for k in $(KERNELS); do \
		SOAK_MINUTES=$(SOAK_MINUTES) tests/soak/run-soak.sh -k $$k \
			> build/soak-$$k.log 2>&1 & pids="$$pids $$!"; done; \
	rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	for k in $(KERNELS); do echo "== $$k"; cat build/soak-$$k.log; done; exit $$rc

shell: all
	tools/guest-run -k $(KVER) --shell

# Unsigned, like any out-of-tree module (loading it taints the kernel).
install: all install-userspace
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) \
		$(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR)) CONFIG_MODULE_SIG_ALL= modules_install
	$(if $(DESTDIR),,depmod -a $(KREL))

# Everything but the module (DKMS installs that, see dkms.conf).
install-userspace: userspace units
	install -D -m 755 userspace/chainadm $(DESTDIR)$(SBINDIR)/chainadm
	if [ -f Documentation/chainadm.8 ]; then \
		install -D -m 644 Documentation/chainadm.8 $(DESTDIR)$(MANDIR)/man8/chainadm.8; fi
	install -D -m 644 userspace/chainadm.bash-completion $(DESTDIR)$(BASHCOMPDIR)/chainadm
	for u in $(UNITS); do \
		install -D -m 644 userspace/$$u $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	$(if $(DESTDIR),,if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi)

# The units name chainadm where install puts it.
units:
	for u in $(UNITS); do \
		sed 's|@SBINDIR@|$(SBINDIR)|g' userspace/$$u.in > userspace/$$u || exit 1; done

uninstall:
	rm -f $(DESTDIR)/lib/modules/$(KREL)/$(INSTALL_MOD_DIR)/kernel/dm-chain.ko*
	$(if $(DESTDIR),,depmod -a $(KREL))
	rm -f $(DESTDIR)$(SBINDIR)/chainadm $(DESTDIR)$(MANDIR)/man8/chainadm.8 \
		$(DESTDIR)$(BASHCOMPDIR)/chainadm $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))

clean:
	if [ -e "$(KDIR)/Makefile" ]; then $(MAKE) -C $(KDIR) M=$(CURDIR) clean; \
		$(MAKE) -C $(KDIR) M=$(CURDIR)/tests/kmod clean; fi
	if [ -f userspace/Makefile ]; then $(MAKE) -C userspace clean; fi
	$(MAKE) -C tests clean
	rm -rf build
