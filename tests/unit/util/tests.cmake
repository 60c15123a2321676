cx_unit_test(test_util ${CMAKE_CURRENT_LIST_DIR}/test_util.c cx_util)
cx_unit_test(test_log ${CMAKE_CURRENT_LIST_DIR}/test_log.c cx_util)
cx_unit_test(test_alloc ${CMAKE_CURRENT_LIST_DIR}/test_alloc.c cx_util)
