#!/bin/sh
# Installs the Debian packages culex needs to build and to run its test suite.
# Run as root on Debian 12 or newer. Safe to run again.
#
#   scripts/install-deps.sh          build and run culex
#   scripts/install-deps.sh --test   also what the tests compare against: Debian's mosquitto
#                                    (mosquitto_passwd interop). Its service is not started:
#                                    it would take port 1883 from culex. SoftHSM with
#                                    libp11's pkcs11 engine (test_22_tls_engine). HAProxy
#                                    (test_24_haproxy starts its own; the service is not
#                                    started either).
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
# Installs services without starting them, now or at the next boot: the tests start their
# own instances on free ports.
install_not_started() {
    # policy-rc.d answering 101 tells Debian's maintainer scripts not to start services.
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        apt-get install -y --no-install-recommends "$@"
    else
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        apt-get install -y --no-install-recommends "$@" || { rm -f "$policy"; exit 1; }
        rm -f "$policy"
    fi
    if command -v systemctl >/dev/null 2>&1; then
        for service in "$@"; do
            systemctl disable "$service" >/dev/null 2>&1 || true
        done
    fi
}
if [ "${1:-}" = "--test" ]; then
    missing=
    for pkg in mosquitto haproxy; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086  # one word per package
        install_not_started $missing
    fi
fi
