#!/bin/sh
# template_build.sh: contrib/plugin-template builds out of tree against an installed culex.
#
#   template_build.sh CMAKE BUILD_DIR SOURCE_DIR PLUGIN_LOADCHECK [SANITIZERS]
#
# 1. `cmake --install BUILD_DIR --prefix TMP` (the layout a package gives users);
# 2. copies the template out of the source tree and builds it with its Makefile, finding
#    culex only through PKG_CONFIG_PATH=TMP/.../pkgconfig;
# 3. checks with nm -D that the .so exports only culex_plugin_entry and needs no culex_/cx_
#    symbol from outside (a plugin must never depend on broker symbols);
#    a second plugin, one that calls the SDK, links with `pkg-config --static --libs`;
# 4. loads it in the test host and checks it denies the configured prefix and logs connects,
#    and that an unknown option stops it.
# SANITIZERS (e.g. "address,undefined") is the build's CULEX_SANITIZE: the installed SDK
# archive is then instrumented, so the template is built with the same flags.
set -eu

cmake=$1 build=$2 src=$3 loadcheck=$4 san=${5:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/culex-tpl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

prefix=$tmp/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "cmake --install"; }

pc=$(find "$prefix" -name culex-plugin.pc | head -n 1)
[ -n "$pc" ] || fail "culex-plugin.pc was not installed"
echo "installed $pc:"
sed 's/^/  /' "$pc"
[ -f "$prefix/include/culex/plugin.h" ] || fail "include/culex/plugin.h was not installed"
[ -f "$prefix/include/culex/sdk/password.h" ] || fail "include/culex/sdk/ was not installed"
find "$prefix" -name auth_file.so | grep -q 'culex/auth_file.so$' ||
    fail "auth_file.so was not installed into LIBDIR/culex/"

PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
pkg-config --exists --print-errors culex-plugin || fail "pkg-config does not find culex-plugin"
case "$(pkg-config --cflags culex-plugin)" in
*"$prefix/include"*) ;;
*) fail "Cflags do not point into the install prefix: $(pkg-config --cflags culex-plugin)" ;;
esac
pkg-config --static --libs culex-plugin >/dev/null || fail "pkg-config --static --libs"

cp -R "$src/contrib/plugin-template" "$tmp/template"
rm -f "$tmp/template"/*.so
extra=""
[ -n "$san" ] && extra="-fsanitize=$san -fno-omit-frame-pointer"
make -C "$tmp/template" CFLAGS="-O2 -g -Wall -Wextra -Werror $extra" LDFLAGS="$extra" ||
    fail "the template does not build out of tree"
so=$(ls "$tmp"/template/*.so)
[ "$(echo "$so" | wc -l)" -eq 1 ] || fail "expected one .so, got: $so"

# A plugin calling the SDK's password functions links their dependencies with --static (the
# SDK is an archive; Libs.private carries libcrypto, libxcrypt, libargon2).
cat >"$tmp/sdk_user.c" <<'EOF'
#include <culex/plugin.h>
#include <culex/sdk/acl.h>
#include <culex/sdk/password.h>
CULEX_PLUGIN_EXPORT int culex_plugin_entry(const culex_host_api *host, culex_plugin *self,
                                           char **errmsg)
{
    (void)self, (void)errmsg;
    culex_acl_free(culex_acl_new());
    return host && culex_pw_verify("x", "y", 1) == 1 ? 0 : -1;
}
EOF
# shellcheck disable=SC2046
cc -std=c11 -fPIC -fvisibility=hidden -shared -Wl,--no-undefined -Wall -Wextra -Werror $extra \
    $(pkg-config --cflags culex-plugin) -o "$tmp/sdk_user.so" "$tmp/sdk_user.c" \
    $(pkg-config --static --libs culex-plugin) ||
    fail "a plugin using the SDK does not link with pkg-config --static --libs culex-plugin"

# Defined dynamic symbols: culex_plugin_entry only (sanitizer runtimes are left out).
exports=$(nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }' |
    grep -v -e '^_init$' -e '^_fini$' -e '^__asan' -e '^__ubsan' -e '^__sanitizer' | sort)
[ "$exports" = "culex_plugin_entry" ] ||
    fail "the plugin must export only culex_plugin_entry; it exports: $exports"
undef=$(nm -D --undefined-only "$so" | awk '{ print $NF }' | grep -E '^(culex_|cx_)' || true)
[ -z "$undef" ] || fail "the plugin needs broker symbols: $undef"
echo "exports: $exports; no undefined culex_/cx_ symbols"

out=$("$loadcheck" "$so" -o deny_prefix=test- test-1 sensor-7:alice) ||
    fail "the template does not load: $out"
echo "$out"
echo "$out" | grep -q '^loaded deny_prefix abi 1\.' || fail "no 'loaded deny_prefix' line"
echo "$out" | grep -q '^auth test-1 deny$' || fail "test-1 was not denied"
echo "$out" | grep -q '^auth sensor-7 defer$' || fail "sensor-7 was not deferred"
echo "$out" | grep -q 'client sensor-7 connected from 127.0.0.1:50000 as alice' ||
    fail "the connect was not logged"

out=$("$loadcheck" "$so" -o deny_prefx=x || true)
echo "$out" | grep -q 'load failed: .*deny_prefx' || fail "an unknown option was accepted: $out"

echo "template_build: ok"
