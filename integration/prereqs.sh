#!/usr/bin/env bash
# Makes sure what archbuild's tests and example need is on this machine: a reachable Docker
# daemon, the CNCF registry (Debian's docker-registry), skopeo as an independent reader, and
# cross compilers for the test programs. Installs Debian packages when run as root; starts
# dockerd when it is installed but not running. Source it, or run it; exits non-zero when a
# prerequisite cannot be had.
set -euo pipefail

# The packages that provide each program. A cross compiler comes with its C library: installed
# without recommended packages it has none, and the tests' static programs need one.
declare -A packages_for=(
  [docker]=docker.io
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [debootstrap]=debootstrap
  [go]=golang-go
  [openssl]=openssl
  [htpasswd]=apache2-utils
  [qemu-aarch64-static]=qemu-user-static
  [update-binfmts]=binfmt-support
  [make]=make
  [ip]=iproute2
  [nsenter]=util-linux
  [iptables]=iptables
  [sshd]=openssh-server
  [ssh]=openssh-client
  [musl-gcc]=musl-tools
  [aarch64-linux-gnu-gcc]="gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
  [arm-linux-gnueabihf-gcc]="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"
  [i686-linux-gnu-gcc]="gcc-i686-linux-gnu libc6-dev-i386-cross"
  [riscv64-linux-gnu-gcc]="gcc-riscv64-linux-gnu libc6-dev-riscv64-cross"
  [s390x-linux-gnu-gcc]="gcc-s390x-linux-gnu libc6-dev-s390x-cross"
  [powerpc64le-linux-gnu-gcc]="gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross"
)

# Whether a program is usable: present, and for a compiler, able to build a static program
# that includes libc headers.
usable() {
  command -v "$1" >/dev/null 2>&1 || return 1
  [[ $1 != *-gcc ]] && return 0
  printf '#include <unistd.h>\nint main(void) { return 0; }\n' \
    | "$1" -static -x c - -o /dev/null >/dev/null 2>&1
}

missing=()
for program in "${!packages_for[@]}"; do
  # shellcheck disable=SC2206 # a list of package names, split on purpose
  usable "$program" || missing+=(${packages_for[$program]})
done

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "prereqs: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    echo "prereqs: missing Debian packages: ${missing[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null; then
    echo "prereqs: starting dockerd in the background (log: /tmp/archbuild-dockerd.log)" >&2
    (dockerd >/tmp/archbuild-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "prereqs: no reachable Docker daemon (DOCKER_HOST=${DOCKER_HOST:-unset})" >&2
    exit 1
  fi
fi
