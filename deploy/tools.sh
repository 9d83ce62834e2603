#!/usr/bin/env bash
# Install the operations tools the tests and image targets use, from Debian's packages.
#
#   deploy/tools.sh          promtool (package prometheus), for tests/test_deploy.py, and
#                            pgbouncer, for tests/test_pgbouncer.py (the tests start it themselves)
#   deploy/tools.sh image    podman, buildah and debootstrap, for deploy/image.sh
#
# Installs only what is missing, and only where it can (root and apt-get): elsewhere it
# says what to install and exits 0, so `make install` does not fail on other systems
# (tests/test_deploy.py then reports promtool as missing, tests/test_pgbouncer.py pgbouncer;
# in CI both fail instead).
set -uo pipefail

want=()
apt_flags=(--no-install-recommends)
case ${1:-test} in
    test)
        command -v promtool >/dev/null || want+=(prometheus)
        [[ -x /usr/sbin/pgbouncer ]] || want+=(pgbouncer)
        ;;
    image)
        command -v podman >/dev/null || want+=(podman)
        command -v buildah >/dev/null || want+=(buildah)
        command -v debootstrap >/dev/null || want+=(debootstrap)
        apt_flags=()  # podman needs its recommended runtime pieces (crun, netavark/CNI plugins)
        ;;
    *) echo "usage: deploy/tools.sh [test|image]" >&2; exit 2 ;;
esac

((${#want[@]} == 0)) && exit 0

if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "deploy/tools.sh: not root or no apt-get; install these yourself: ${want[*]}" >&2
    exit 0
fi

echo "deploy/tools.sh: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq "${apt_flags[@]}" "${want[@]}"; } >&2; then
    echo "deploy/tools.sh: apt-get failed; install these yourself: ${want[*]}" >&2
    exit 0
fi
# The prometheus package may start a server through its init script; only promtool is wanted.
if [[ " ${want[*]} " == *" prometheus "* ]] && command -v service >/dev/null; then
    service prometheus stop >/dev/null 2>&1 || true
fi
# Likewise the pgbouncer package's own server on port 6432: the tests start their own.
if [[ " ${want[*]} " == *" pgbouncer "* ]] && command -v service >/dev/null; then
    service pgbouncer stop >/dev/null 2>&1 || true
fi
exit 0
