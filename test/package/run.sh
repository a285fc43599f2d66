#!/usr/bin/env bash
# Packages and what comes with them (issue 20):
#   - every example config and intent passes medix-dp --check / medix-cp --check (they never rot);
#   - scripts/package builds the four packages; lintian finds no error or warning;
#   - they are installed on this machine with apt (their maintainer scripts run: the services
#     are enabled), the installed binaries check the installed examples, the man pages are
#     found, systemd-analyze verify accepts the units, and then they are purged and the machine
#     is as it was (skipped, with the reason, if a medix package was installed before);
#   - medixctl's bash completion completes commands, kinds and the names of a running medix-dp.
# Ends with "package: N passed, M failed".
set -u
cd "$(dirname "$0")/../.."
dp=${MEDIX_DP:-build/dataplane/medix-dp}
cp=${MEDIX_CP:-build/controlplane/medix-cp}
ctl=${MEDIXCTL:-build/controlplane/cli/medixctl}
packages=(medix-dataplane medix-controlplane medixctl medix-proto)
prefix=medix-package-$$
tmp=$(mktemp -d /tmp/medix-package.XXXXXX)
passed=0 failed=0 installed=0 dp_pid=

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL $1"
  [ -n "${2:-}" ] && sed 's/^/  | /' <<<"$2" | tail -15
  failed=$((failed + 1))
}

cleanup() {
  [ -n "$dp_pid" ] && kill -TERM "$dp_pid" 2>/dev/null && wait "$dp_pid" 2>/dev/null
  [ $installed -eq 1 ] && dpkg --purge "${packages[@]}" >/dev/null 2>&1
  rm -rf "$tmp" "/var/run/dpdk/$prefix"
}
trap cleanup EXIT

# --- the examples -----------------------------------------------------------------------------
for f in examples/*/medix-dp.json; do
  if out=$("$dp" -- --check --config "$f" 2>&1); then pass "medix-dp --check $f"; else fail "medix-dp --check $f" "$out"; fi
done
for f in examples/*/intent.json; do
  if out=$("$cp" --check --intent "$f" 2>&1); then pass "medix-cp --check $f"; else fail "medix-cp --check $f" "$out"; fi
done

# --- the packages -----------------------------------------------------------------------------
if out=$(scripts/package 2>&1); then
  pass "scripts/package builds ${#packages[@]} packages: $(ls build/packages/*.deb | xargs -n1 basename | tr '\n' ' ')"
else
  fail "scripts/package" "$out"
  echo "package: $passed passed, $((failed + 1)) failed"
  exit 1
fi
debs=(build/packages/*.deb)
out=$(lintian "${debs[@]}" 2>&1 | grep -v 'running with root privileges')
if [ -z "$out" ]; then pass "lintian: no error, no warning"; else fail "lintian" "$out"; fi
out=$(dpkg-deb -I build/packages/medix-controlplane_*.deb >/dev/null && dpkg-deb --fsys-tarfile build/packages/medix-controlplane_*.deb |
  tar -xO ./usr/share/doc/medix-controlplane/copyright)
if grep -q 'GPL-2.0-or-later' <<<"$out" && grep -q "links strongSwan's libcharon" <<<"$out"; then
  pass "medix-controlplane's copyright says the binary is GPL-2.0-or-later (it links libcharon)"
else
  fail "medix-controlplane's copyright" "$out"
fi

before=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | grep ' installed$' || true)
if [ -n "$before" ]; then
  echo "SKIP installing the packages: already installed here, left as they are: $before"
else
  units_before=$(ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | sort)
  installed=1
  # As the README says: apt installs them with their dependencies (all there already).
  if out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]/#/./}" 2>&1); then
    pass "apt-get install ./build/packages/*.deb installs the four packages"
  else
    fail "apt-get install" "$out"
  fi
  enabled=$(ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | grep -c '^medix-\(dp\|cp\)\.service$')
  if [ "$enabled" = 2 ]; then pass "the postinst scripts enabled medix-dp.service and medix-cp.service"
  else fail "medix-dp.service and medix-cp.service enabled" "$(ls /etc/systemd/system/multi-user.target.wants/)"; fi
  ok=1 log=
  for f in /usr/share/doc/medix-dataplane/examples/*/medix-dp.json; do
    log+=$(/usr/bin/medix-dp -- --check --config "$f" 2>&1 | head -1)$'\n' || ok=0
  done
  log+=$(/usr/bin/medix-cp --check --intent /usr/share/doc/medix-dataplane/examples/ipsec-carrier/intent.json 2>&1)$'\n' || ok=0
  if [ $ok -eq 1 ] && [ "$(grep -c ': ok' <<<"$log")" -ge 4 ]; then
    pass "the installed medix-dp and medix-cp check the installed examples"
  else
    fail "the installed binaries check the examples" "$log"
  fi
  if out=$(/usr/bin/medixctl --help 2>&1) && grep -q '^usage: medixctl' <<<"$out"; then pass "the installed medixctl --help"
  else fail "medixctl --help" "$out"; fi
  if out=$(man -w medix-dp medix-cp medixctl 2>&1); then pass "man pages: $(tr '\n' ' ' <<<"$out")"; else fail "man pages" "$out"; fi
  if out=$(systemd-analyze verify /lib/systemd/system/medix-dp.service /lib/systemd/system/medix-cp.service 2>&1) &&
    [ -z "$out" ]; then
    pass "systemd-analyze verify: the installed units are clean"
  else
    fail "systemd-analyze verify" "$out"
  fi
  # What the units run with (docs/running.md, "Under systemd"): medix-dp's sequence numbers on disk,
  # medix-cp's pair options from /etc/default (the witness off until set).
  dp_unit=$(cat /lib/systemd/system/medix-dp.service 2>&1) cp_unit=$(cat /lib/systemd/system/medix-cp.service 2>&1)
  if grep -qx 'StateDirectory=medix-dp' <<<"$dp_unit" && grep -q '^ExecStart=.* --state-dir /var/lib/medix-dp ' <<<"$dp_unit" &&
    grep -q '^ExecStart=.* \$MEDIX_CP_HA \$MEDIX_CP_IKE_WITNESS ' <<<"$cp_unit" &&
    grep -qx 'MEDIX_CP_IKE_WITNESS=""' /etc/default/medix-cp; then
    pass "medix-dp.service: --state-dir /var/lib/medix-dp (StateDirectory); medix-cp.service: MEDIX_CP_HA, MEDIX_CP_IKE_WITNESS (empty)"
  else
    fail "the units' state directory and pair options" "$dp_unit"$'\n'"$cp_unit"
  fi
  if out=$(dpkg --purge "${packages[@]}" 2>&1); then installed=0; pass "dpkg --purge removes them"; else fail "dpkg --purge" "$out"; fi
  left=$(ls /usr/bin/medix-dp /usr/bin/medix-cp /usr/bin/medixctl /etc/default/medix-dp /etc/default/medix-cp \
    /lib/systemd/system/medix-dp.service /usr/share/medix 2>/dev/null)
  units_after=$(ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | sort)
  if [ -z "$left" ] && [ "$units_before" = "$units_after" ]; then pass "nothing of them is left; the machine is as it was"
  else fail "left after purge" "$left"$'\n'"$(diff <(echo "$units_before") <(echo "$units_after"))"; fi
fi

# --- bash completion --------------------------------------------------------------------------
cat >"$tmp/config.json" <<'JSON'
{"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"}],
 "tenants": [{"name": "hosp-a"}, {"name": "hosp-b"}, {"name": "archive"}]}
JSON
setsid "$dp" --no-huge -m 256 --no-pci --file-prefix "$prefix" -l 0,1 --vdev net_null0 -- --config "$tmp/config.json" \
  >"$tmp/dp.log" 2>&1 &
dp_pid=$!
for _ in $(seq 100); do grep -q 'medix-dp: ready' "$tmp/dp.log" && break; sleep 0.1; done
complete_words() { # the completions of a command line (its last word may be empty)
  PATH="$PWD/$(dirname "$ctl"):$PATH" bash -c '
    source /usr/share/bash-completion/bash_completion
    source controlplane/cli/medixctl.bash
    COMP_LINE="$1"; COMP_POINT=${#1}
    read -ra COMP_WORDS <<<"$1"; [[ $1 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _medixctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$1" 2>&1 | sort | tr '\n' ' '
}
got=$(complete_words "medixctl sh")
if [ "$got" = "show " ]; then pass "completion: a command (sh -> show)"; else fail "completion of 'sh'" "$got"; fi
kinds_help=$("$ctl" --help | sed -n '/^KIND and KEY/,/^set creates/p' | grep -o '\b[a-z-]* [A-Z]' | cut -d' ' -f1 | grep -vx -e and -e '' | sort -u | tr '\n' ' ')
kinds_completed=$(complete_words "medixctl show " | tr ' ' '\n' | grep -v '^\(fib\|ports\)$' | sort -u | tr '\n' ' ')
if [ "$kinds_completed" = "$kinds_help" ]; then pass "completion: the kinds medixctl --help names ($kinds_completed)"
else fail "completion of kinds" "completed: $kinds_completed"$'\n'"--help: $kinds_help"; fi
got=$(complete_words "medixctl -p $prefix show tenant ")
if [ "$got" = "archive hosp-a hosp-b " ]; then pass "completion: the tenants of the running medix-dp ($got)"
else fail "completion of a running medix-dp's tenants" "$got"; fi
got=$(complete_words "medixctl -p $prefix lookup hosp")
if [ "$got" = "hosp-a hosp-b " ]; then pass "completion: lookup's tenant ($got)"; else fail "completion of lookup" "$got"; fi

echo "package: $passed passed, $failed failed"
[ $failed -eq 0 ]
