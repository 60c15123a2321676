# Network protocol modules (core/net/ws.c, core/net/proxy.c): pure, no sockets.
cx_unit_test(test_net_ws ${CMAKE_CURRENT_LIST_DIR}/test_ws.c cx_netproto)
cx_unit_test(test_net_proxy ${CMAKE_CURRENT_LIST_DIR}/test_proxy.c cx_netproto)
# The transport filter stack (core/net/filter*.c) over socketpairs, with a loop but no broker.
cx_unit_test(test_net_filter ${CMAKE_CURRENT_LIST_DIR}/test_filter.c cx_net)
