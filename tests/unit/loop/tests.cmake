cx_unit_test(test_loop ${CMAKE_CURRENT_LIST_DIR}/test_loop.c cx_loop)
