#!/bin/sh
# Installs the Debian packages culex needs to build and to run its test suite.
# Run as root on Debian 12 or newer. Safe to run again.
#
#   scripts/install-deps.sh          build and run culex
#   scripts/install-deps.sh --test   also what the tests compare against: Debian's mosquitto
#                                    (mosquitto_passwd interop). Its service is not started:
#                                    it would take port 1883 from culex. And SoftHSM with
#                                    libp11's pkcs11 engine (test_22_tls_engine).
# The TLS tests make their certificates with the openssl CLI. The browser test installs its
# own (chromium, npm packages): tests/browser/install.sh.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    build-essential cmake pkg-config \
    libssl-dev libcrypt-dev libargon2-dev libsqlite3-dev \
    python3 python3-paho-mqtt mosquitto-clients openssl \
    procps iproute2
if [ "${1:-}" = "--test" ]; then
    apt-get install -y --no-install-recommends softhsm2 libengine-pkcs11-openssl
fi
if [ "${1:-}" = "--test" ] && ! dpkg -s mosquitto >/dev/null 2>&1; then
    # policy-rc.d answering 101 tells Debian's maintainer scripts not to start services.
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        apt-get install -y --no-install-recommends mosquitto
    else
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        apt-get install -y --no-install-recommends mosquitto || { rm -f "$policy"; exit 1; }
        rm -f "$policy"
    fi
    # and not at the next boot either
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable mosquitto >/dev/null 2>&1 || true
    fi
fi
