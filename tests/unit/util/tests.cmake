cx_unit_test(test_util ${CMAKE_CURRENT_LIST_DIR}/test_util.c cx_util)
