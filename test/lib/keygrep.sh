# shellcheck shell=bash
# The secret-handling shell suites' last check (test/lib/keygrep.py does the work): no key or
# PSK of the suite in any of its logs or error outputs.
#
#   source test/lib/keygrep.sh
#   keygrep_check pass fail --config "$tmp/intent.json" --secret "NAME=$psk" --pem "NAME=$key" \
#     --skip 'study/*' --scan "$tmp"
#
# The checker's self-test (a key planted in every form must be found) runs first. Each PASS or
# FAIL line goes to the suite's own pass or fail function (their names are the first two
# arguments), so the suite's "N passed, M failed" counts them; a checker that dies is a FAIL.
KEYGREP_PY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/keygrep.py

keygrep_check() {
  local pass_fn=$1 fail_fn=$2 line rc=1 seen=
  shift 2
  while IFS= read -r line; do
    case $line in
      "PASS "*) "$pass_fn" "${line#PASS }"; seen=1 ;;
      "FAIL "*) "$fail_fn" "${line#FAIL }"; seen=1 ;;
      "KEYGREP_EXIT "*) rc=${line#KEYGREP_EXIT } ;;
      *) echo "  | $line" ;;
    esac
  done < <(/usr/bin/python3 "$KEYGREP_PY" --self-test "$@" 2>&1; echo "KEYGREP_EXIT $?")
  if [ "$rc" -ne 0 ] && [ -z "$seen" ]; then
    "$fail_fn" "the key check (test/lib/keygrep.py) exited $rc without a result"
  fi
  return 0
}
