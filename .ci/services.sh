#!/usr/bin/env bash
# Install the servers the tests start on loopback (MariaDB, OpenSSH) and the tools of the local lab (iproute2's `ip`,
# nftables' `nft`). Idempotent; root on Debian/Ubuntu. Only the packages are installed: the tests and `labctl local`
# run their own mariadbd/sshd processes from temporary directories with their own config, never the system
# services, and load nftables rules only inside network namespaces they create.
set -euo pipefail
need=()
{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; } &&
  command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
