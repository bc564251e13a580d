#!/usr/bin/env bash
# Install what tests/cluster/test_slurm.py needs to start a one-node SLURM
# cluster on 127.0.0.1: Debian's slurm-wlm (slurmctld, slurmd, sbatch, squeue)
# and munge (SLURM's authentication). Called by .ci/run; safe to run again:
# it does nothing when the programs are there. Needs root and apt-get.
set -euo pipefail

missing=()
command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
((${#missing[@]})) || exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-slurm-test: needs root and apt-get to install: ${missing[*]}" >&2
    exit 1
fi
echo "install-slurm-test: installing ${missing[*]}"
apt-get update -qq
# The packages' own services need a config in /etc/slurm, which this does not
# write: the test starts its own daemons from its own config.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
