#!/usr/bin/env bash
# Installs those of the given Debian packages that are missing, running
# apt-get update first. Does nothing (and needs no root) when all are there.
# Usage: bash scripts/install_packages.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
((${#missing[@]})) || exit 0
echo "installing ${#missing[@]} Debian package(s) with apt-get: ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install_packages.sh: installing packages needs root, and sudo is not installed: run this as root" \
      "(for instance: su -c 'bash $0 ${missing[*]}'), or install sudo and allow this user to use it" >&2
    exit 1
  fi
  if ! sudo -n true 2>/dev/null; then
    echo "install_packages.sh: installing packages needs root, and sudo asks this user for a password: run" \
      "'sudo true' first (or run this as root), then run this again" >&2
    exit 1
  fi
  sudo=(sudo -n)
fi
# No questions from debconf: given through env, as sudo's env_reset would
# drop an exported DEBIAN_FRONTEND. apt's own progress: what it fetches,
# unpacks and sets up, one line each.
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
"${sudo[@]}" "${apt[@]}" update -q
"${sudo[@]}" "${apt[@]}" install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"
