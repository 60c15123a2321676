# core/net fragments (included by core/CMakeLists.txt; paths are relative to core/).

# Pure protocol modules for the network layer: the WebSocket handshake and framing
# (RFC 6455) and the PROXY protocol v1/v2 header. No I/O; util only (+ libcrypto for the
# WebSocket handshake's SHA-1), so they are unit-tested and fuzzed without sockets.
find_package(OpenSSL REQUIRED)
add_library(cx_netproto STATIC net/ws.c net/proxy.c)
target_link_libraries(cx_netproto PUBLIC cx_util OpenSSL::Crypto)

# The transport filter stack (PROXY header, TLS, WebSockets) and the listeners' TLS
# contexts, run by conn.c for listeners that are not plain TCP (filter.h).
target_sources(cx_net PRIVATE net/filter.c net/filter_proxy.c net/filter_tls.c net/filter_ws.c
    net/tls_ctx.c net/tls_engine.c)
target_link_libraries(cx_net PUBLIC cx_netproto OpenSSL::SSL)
