#!/usr/bin/env bash
# Install the servers the tests start on loopback (MariaDB, PostgreSQL, OpenSSH), the tools of the local lab
# (iproute2's `ip`, nftables' `nft`) and the validators of the DB VMs' cloud-init documents (`cloud-init schema`,
# `shellcheck`). Idempotent (apt-get runs only when something is missing); root on Debian/Ubuntu. Only the packages
# are installed: the tests and `labctl local` run their own mariadbd/postgres/sshd processes from temporary
# directories with their own config, never the system services or clusters, and load nftables rules only inside
# network namespaces they create.
set -euo pipefail
need=()
{ [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1; } &&
  command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
# Debian's server binaries live in /usr/lib/postgresql/<major>/bin (not on PATH); labctl/local/servers.py finds them.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/initdb' \
  >/dev/null || need+=(postgresql)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux) # postgres refuses root: it runs as PG_USER below
command -v cloud-init >/dev/null 2>&1 || need+=(cloud-init)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # No service may start during the install (postgresql's and cloud-init's maintainer scripts would start the
  # system cluster / enable boot services): a temporary policy-rc.d answers "not allowed" (101) to
  # invoke-rc.d/deb-systemd-invoke, unless the machine already has one (containers usually do).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The unprivileged account our own PostgreSQL servers run as (labctl/local/servers.py PG_USER): a system user with
# no home and no login shell, owning nothing but the temporary data directories made for it.
PG_USER=dblab-pg
getent passwd "$PG_USER" >/dev/null ||
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
