#!/bin/sh
# Installs the Debian packages culex needs to build and to run its test suite.
# Run as root on Debian 12 or newer. Safe to run again.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    build-essential cmake pkg-config \
    libssl-dev libcrypt-dev libargon2-dev \
    python3 python3-paho-mqtt mosquitto-clients \
    procps iproute2
