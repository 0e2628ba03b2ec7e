#!/usr/bin/env bash
# Checks (and, as root, installs) the Debian packages a job needs.
#   tools/deps.sh [build|test|bench|fuzz|verify ...]
# As root: missing packages are installed with apt-get (idempotent). Otherwise the one
# `apt-get install` line that is needed is printed and the exit status is 1.
set -euo pipefail

declare -A PKGS=(
  [build]="cmake make gcc g++ pkg-config python3"
  [test]="cmake make gcc g++ pkg-config python3 libcriterion-dev valgrind perl git coreutils tar gzip gawk sed patch"
  [bench]="cmake make gcc pkg-config python3 libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev time perl coreutils"
  [fuzz]="clang libclang-rt-14-dev libfuzzer-14-dev afl++"
)
PKGS[verify]="${PKGS[test]} ${PKGS[fuzz]}"

jobs=("$@")
[ ${#jobs[@]} -eq 0 ] && jobs=(build)
want=()
for j in "${jobs[@]}"; do
  [ -n "${PKGS[$j]+x}" ] || { echo "deps.sh: unknown job '$j' (build|test|bench|fuzz|verify)" >&2; exit 2; }
  for p in ${PKGS[$j]}; do want+=("$p"); done
done

missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps: installed"
  exit 0
fi
echo "Missing Debian packages. Install them with:" >&2
echo "  sudo apt-get install -y ${missing[*]}" >&2
exit 1
