#!/usr/bin/env bash
# The misuse suite from the command line (and from `make verify`): finds the build that LIB belongs to,
# builds the misuse programs there if needed, and runs misuse_runner with the arguments given.
#
#   tests/misuse/run_misuse.sh [--lib LIB] [runner options: --table FILE --mode M|all --repeat N ...]
#
# LIB defaults to build/hardened/libhakmem-hardened.so. The programs live in <build>/tests/misuse/,
# where <build> is LIB's directory (each preset builds into build/<preset>). See run_misuse.c for the
# checks, the output lines and the table format (case <TAB> fault <TAB> yes|no <TAB> message).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
lib=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--lib" ] && [ $((i + 1)) -lt ${#args[@]} ] && lib=${args[$((i + 1))]}
done
if [ -z "$lib" ]; then
  lib=$root/build/hardened/libhakmem-hardened.so
  args=(--lib "$lib" "${args[@]}")
fi
if [ ! -f "$lib" ]; then
  echo "run_misuse.sh: $lib not found (build it: cmake --preset hardened && cmake --build --preset hardened)" >&2
  exit 2
fi
bdir=$(cd "$(dirname "$lib")" && pwd)
runner=$bdir/tests/misuse/misuse_runner
if [ -f "$bdir/CMakeCache.txt" ]; then
  # cheap when up to date; builds the programs when the suite is newer than the build
  if ! cmake --build "$bdir" --target misuse_runner -j 2 >/dev/null; then
    echo "run_misuse.sh: building misuse_runner in $bdir failed (rerun: cmake --build $bdir --target misuse_runner)" >&2
    exit 2
  fi
fi
if [ ! -x "$runner" ]; then
  echo "run_misuse.sh: $runner not found: the misuse suite is built only in the hardened and debug variants" >&2
  exit 2
fi
exec "$runner" "${args[@]}"
