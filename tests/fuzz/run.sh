#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (`make fuzz`, `make fuzz-minimize`).
#
# Usage: tests/fuzz/run.sh run|minimize|build [TARGET...]
#   build     build the libFuzzer targets only
#   run       build, then fuzz each target for FUZZ_SECONDS (default 30)
#             starting from its committed corpus tests/fuzz/corpus/TARGET
#             (and with tests/fuzz/dict/TARGET.dict when there is one).
#             New interesting inputs go to build-fuzz/new/TARGET (never to
#             the committed corpus); a crash, leak, timeout or sanitizer
#             report stops that target, its input is copied to
#             tests/fuzz/crashers/TARGET/ and the run fails (after the
#             other targets have had their turn).
#   minimize  merge build-fuzz/new/TARGET into tests/fuzz/corpus/TARGET
#             with -merge=1: only inputs that add coverage are added.
# TARGET is NAME for tests/fuzz/fuzz_NAME.c; default: every one.
#
# The targets need clang's -fsanitize=fuzzer, which the main build (gcc)
# does not use, so they are built in a tree of their own: build-fuzz/tree,
# a copy of `make distdir` configured with CC=clang --enable-fuzzing and
# ASan + UBSan (every UBSan finding fatal). Only changed files are copied,
# so a second run rebuilds only what changed.
#
# Environment: FUZZ_SECONDS, FUZZ_BUILDDIR (a configured build tree whose
# Makefile provides `make distdir`; default: the checkout), FUZZ_WORK
# (default FUZZ_BUILDDIR/build-fuzz), FUZZ_CC (default clang), MAKE.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
builddir=${FUZZ_BUILDDIR:-$top}
work=${FUZZ_WORK:-$builddir/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
cc=${FUZZ_CC:-clang}
make=${MAKE:-make}
cflags='-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all'

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

mode=${1:-run}
shift || true
case $mode in run | minimize | build) ;; *) die "usage: $0 run|minimize|build [TARGET...]" ;; esac
case $seconds in '' | *[!0-9]*) die "FUZZ_SECONDS=$seconds is not a number of seconds" ;; esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$top"/tests/fuzz/fuzz_*.c; do
		f=${f##*/fuzz_}
		targets+=("${f%.c}")
	done
fi
for t in "${targets[@]}"; do
	[ -f "$top/tests/fuzz/fuzz_$t.c" ] || die "no target $t (tests/fuzz/fuzz_$t.c)"
	[ -d "$top/tests/fuzz/corpus/$t" ] || die "target $t has no corpus tests/fuzz/corpus/$t"
done

build() {
	command -v "$cc" >/dev/null 2>&1 || die "$cc not found: install the Debian packages clang and libclang-rt-dev"
	[ -f "$builddir/Makefile" ] || die "$builddir is not configured: run ./configure there first"
	# The tree that has the fuzz build (and no in-tree configure of its own).
	rm -rf "$work/stage"
	mkdir -p "$work"
	"$make" -s -C "$builddir" distdir distdir="$work/stage" >/dev/null
	mkdir -p "$work/tree"
	# -p keeps modification times, so make rebuilds only what changed.
	cp -pR "$work/stage/." "$work/tree/"
	rm -rf "$work/stage"
	local flags="CC=$cc --enable-fuzzing CFLAGS=$cflags"
	if [ ! -f "$work/tree/Makefile" ] || [ "$(cat "$work/tree/.fuzz-configure" 2>/dev/null)" != "$flags" ]; then
		say "configuring $work/tree ($cc, libFuzzer, ASan, UBSan)"
		(cd "$work/tree" && ./configure CC="$cc" --enable-fuzzing CFLAGS="$cflags" >configure.out 2>&1) ||
			{ tail -n 20 "$work/tree/configure.out" >&2; die "configure failed (see $work/tree/config.log)"; }
		printf '%s' "$flags" >"$work/tree/.fuzz-configure"
	fi
	local bins=()
	for t in "${targets[@]}"; do bins+=("tests/fuzz/fuzz_$t"); done
	say "building ${bins[*]}"
	"$make" -s -C "$work/tree" -j2 "${bins[@]}" >"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; die "build failed (see $work/build.log)"; }
}

run() {
	local t bin log rc failed=() files f dict
	mkdir -p "$work/logs"
	for t in "${targets[@]}"; do
		bin=$work/tree/tests/fuzz/fuzz_$t
		log=$work/logs/$t.log
		mkdir -p "$work/new/$t"
		rm -rf "$work/crashers/$t"
		mkdir -p "$work/crashers/$t"
		say "$t: ${seconds}s from tests/fuzz/corpus/$t"
		rc=0
		dict=()
		[ -f "$top/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$top/tests/fuzz/dict/$t.dict")
		# The first corpus directory receives new inputs; the committed one is only read.
		"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			${dict[@]+"${dict[@]}"} -artifact_prefix="$work/crashers/$t/" "$work/new/$t" "$top/tests/fuzz/corpus/$t" \
			>"$log" 2>&1 </dev/null || rc=$?
		files=$(find "$work/crashers/$t" -type f | sort)
		if [ "$rc" -ne 0 ] || [ -n "$files" ]; then
			failed+=("$t")
			say "$t: FAILED (exit $rc); the report:"
			grep -v '^#[0-9]' "$log" | tail -n 60 >&2 || true
			if [ -n "$files" ]; then
				mkdir -p "$top/tests/fuzz/crashers/$t"
				for f in $files; do
					cp "$f" "$top/tests/fuzz/crashers/$t/"
					say "$t: input kept as tests/fuzz/crashers/$t/${f##*/}"
				done
				say "$t: reproduce with $bin tests/fuzz/crashers/$t/<file>"
			fi
		else
			say "$t: ok, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?') runs," \
				"$(find "$work/new/$t" -type f | wc -l) new inputs in $work/new/$t"
		fi
	done
	if [ ${#failed[@]} -gt 0 ]; then
		say "crashes in: ${failed[*]} (fix the code; then move each input into tests/fuzz/corpus/TARGET/)"
		return 1
	fi
	say "no crashes; \`make fuzz-minimize\` merges the new inputs into the committed corpus"
}

minimize() {
	local t before after
	for t in "${targets[@]}"; do
		if [ -z "$(find "$work/new/$t" -type f 2>/dev/null | head -n 1)" ]; then
			say "$t: no new inputs"
			continue
		fi
		before=$(find "$top/tests/fuzz/corpus/$t" -type f | wc -l)
		"$work/tree/tests/fuzz/fuzz_$t" -merge=1 -timeout=10 -rss_limit_mb=2048 \
			"$top/tests/fuzz/corpus/$t" "$work/new/$t" >"$work/logs/$t.merge.log" 2>&1 </dev/null ||
			{ tail -n 40 "$work/logs/$t.merge.log" >&2; die "$t: merge failed"; }
		after=$(find "$top/tests/fuzz/corpus/$t" -type f | wc -l)
		rm -rf "$work/new/$t"
		say "$t: $((after - before)) inputs added to tests/fuzz/corpus/$t ($after now)"
	done
}

build
case $mode in
run) run ;;
minimize) minimize ;;
build) ;;
esac
