#!/usr/bin/env bash
# Install the servers the tests start on loopback (MariaDB, OpenSSH). Idempotent; root on Debian/Ubuntu.
# Only the packages are installed: the tests run their own mariadbd/sshd processes on free 127.0.0.1 ports,
# from temporary directories with their own config, never the system services.
set -euo pipefail
need=()
{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; } &&
  command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
