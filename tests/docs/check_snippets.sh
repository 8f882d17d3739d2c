#!/usr/bin/env bash
# Every ```c block of README.md, docs/*.md and examples/README.md is compiled
# (cc -std=c11 -Wall -Wextra -Werror, against the public headers and the
# shared library, as a user would) so that no snippet can rot:
# - a block with main() is a whole program: compiled as it is, then run
#   against a fresh embedded cluster (`kaffe mock --topic interesting-topic:3
#   --topic whitelist:2`), every "127.0.0.1:PORT" in it replaced by the
#   cluster's address, after a keyed line "doc-key:doc-value" was produced to
#   interesting-topic. It must exit 0 by itself, or after SIGTERM once it
#   printed that message (a consumer that runs until stopped);
# - any other block is a fragment: compiled only, as the body of main() with
#   `char err[512]` declared (what the fragments around it use).
# Compiler errors point at the Markdown file and line (#line).
# usage: check_snippets.sh SOURCE_DIR KAFFE_CLI LIBRARY_DIR
set -euo pipefail
src=$1
cli=$2
libdir=$3
work=$(mktemp -d)
mock_pid=
cleanup() {
    if [ -n "$mock_pid" ]; then
        kill "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Extracts file's ```c blocks into $work/<n>.c, each starting with a #line
# directive; prints "n:first-line" per block.
extract() {
    local file=$1 rel=$2
    awk -v out="$work" -v rel="$rel" -v base="$count" '
        /^```c[ \t]*$/ && !in_block { in_block = 1; n++; name = out "/" (base + n) ".src";
                                      printf "" > name; print (base + n) ":" NR + 1; next }
        /^```[ \t]*$/ && in_block { in_block = 0; close(name); next }
        in_block { print >> name }' "$file"
}

cc=${CC:-cc}

# A fresh embedded cluster for each program (a consumer group that a previous
# program left would make the next one wait: see GETTING_STARTED, section 3),
# holding the keyed line "doc-key:doc-value" in interesting-topic.
start_mock() {
    stop_mock
    local out="$work/mock.out"
    : >"$out"
    "$cli" mock --topic interesting-topic:3 --topic whitelist:2 >"$out" 2>"$work/mock.err" &
    mock_pid=$!
    for _ in $(seq 200); do
        [ -s "$out" ] && break
        sleep 0.05
    done
    bootstraps=$(head -1 "$out")
    [ -n "$bootstraps" ] || { echo "kaffe mock did not start: $(cat "$work/mock.err")"; exit 1; }
    echo "doc-key:doc-value" | "$cli" produce -b "$bootstraps" -t interesting-topic -k : ||
        { echo "could not produce the test message"; exit 1; }
}
stop_mock() {
    if [ -n "$mock_pid" ]; then
        kill "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
        mock_pid=
    fi
}

count=0
passed=0
failed=0
files=("$src/README.md" "$src"/docs/*.md "$src/examples/README.md")
for file in "${files[@]}"; do
    [ -f "$file" ] || continue
    rel=${file#"$src"/}
    while IFS=: read -r n line; do
        count=$n
        body="$work/$n.src"
        prog="$work/$n.c"
        if grep -q '\bmain *(' "$body"; then
            kind=program
            { printf '#line %d "%s"\n' "$line" "$rel"; cat "$body"; } >"$prog"
        else
            kind=fragment
            { printf '#include <kaffe/kaffe.h>\n#include <stdio.h>\n\n'
              printf 'int main(void) {\n    char err[512];\n    (void)err;\n'
              printf '#line %d "%s"\n' "$line" "$rel"; cat "$body"
              printf '\n    return 0;\n}\n'; } >"$prog"
        fi
        what="$rel:$line ($kind)"
        if ! "$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" -o "$work/$n" "$prog" \
            -L"$libdir" -lkaffe -Wl,-rpath,"$libdir" >"$work/$n.cc" 2>&1; then
            echo "FAIL compile $what:"
            sed 's/^/    /' "$work/$n.cc"
            failed=$((failed + 1))
            continue
        fi
        if [ "$kind" = fragment ]; then
            echo "ok   $what: compiles"
            passed=$((passed + 1))
            continue
        fi
        # Run it against the embedded cluster.
        start_mock
        sed -i "s/127\.0\.0\.1:[0-9][0-9]*/$bootstraps/g" "$prog"
        "$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" -o "$work/$n" "$prog" \
            -L"$libdir" -lkaffe -Wl,-rpath,"$libdir"
        # Line-buffered stdout (stdbuf), so a printed message is seen at once.
        stdbuf -oL "$work/$n" >"$work/$n.out" 2>"$work/$n.err" &
        pid=$!
        started=$SECONDS
        status=
        for _ in $(seq 600); do # up to 60 s
            if ! kill -0 "$pid" 2>/dev/null; then
                status=0
                wait "$pid" || status=$?
                break
            fi
            grep -q 'doc-value' "$work/$n.out" && break
            sleep 0.1
        done
        if [ -z "$status" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 300); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
            status=0
            wait "$pid" || status=$?
            if ! grep -q 'doc-value' "$work/$n.out"; then
                echo "FAIL run $what: neither exited nor printed the message within 60 s"
                sed 's/^/    /' "$work/$n.err" | tail -5
                failed=$((failed + 1))
                continue
            fi
        fi
        if [ "$status" -ne 0 ]; then
            echo "FAIL run $what: exit status $status; its output, then its errors:"
            sed 's/^/    /' "$work/$n.out" | tail -5
            sed 's/^/    /' "$work/$n.err" | tail -5
            failed=$((failed + 1))
            continue
        fi
        echo "ok   $what: compiles, runs ($((SECONDS - started)) s), exits 0$(grep -q doc-value "$work/$n.out" && echo ', printed the message')"
        passed=$((passed + 1))
    done < <(extract "$file" "$rel")
done
echo "docs: $passed passed, $failed failed"
[ "$passed" -gt 0 ] || { echo "no C snippet found"; exit 1; }
[ "$failed" -eq 0 ]
