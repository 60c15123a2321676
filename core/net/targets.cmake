# core/net fragments (included by core/CMakeLists.txt; paths are relative to core/).

# Pure protocol modules for the network layer: the WebSocket handshake and framing
# (RFC 6455). No I/O; util only (+ libcrypto for the handshake's SHA-1), so they are
# unit-tested and fuzzed without sockets.
find_package(OpenSSL REQUIRED)
add_library(cx_netproto STATIC net/ws.c)
target_link_libraries(cx_netproto PUBLIC cx_util OpenSSL::Crypto)
