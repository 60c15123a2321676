# core/net fragments (included by core/CMakeLists.txt; paths are relative to core/).

# Pure protocol modules for the network layer: the WebSocket handshake and framing
# (RFC 6455) and the PROXY protocol v1/v2 header. No I/O; util only (+ libcrypto for the
# WebSocket handshake's SHA-1), so they are unit-tested and fuzzed without sockets.
find_package(OpenSSL REQUIRED)
add_library(cx_netproto STATIC net/ws.c net/proxy.c)
target_link_libraries(cx_netproto PUBLIC cx_util OpenSSL::Crypto)
