#!/usr/bin/env bash
# Which object file calls which, from the symbols they define and use:
# "a -> b" means a.c calls a function (or reads a variable) defined in b.c.
# Usage: tools/callgraph.sh [build dir]   (after make; reads *.o)
set -eu
cd "${1:-.}"
objs=$(ls *.o src/*.o 2>/dev/null | grep -v '\.bc$')
declare -A def
for o in $objs; do
    for s in $(nm --defined-only "$o" | awk '$2 ~ /[TDBR]/ {print $3}'); do def[$s]=$(basename "$o" .o); done
done
for o in $objs; do
    me=$(basename "$o" .o)
    for s in $(nm --undefined-only "$o" | awk '{print $2}'); do
        d=${def[$s]:-}
        [ -n "$d" ] && [ "$d" != "$me" ] && echo "$me -> $d"
    done
done | sort -u
