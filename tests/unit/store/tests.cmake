cx_unit_test(test_store_log ${CMAKE_CURRENT_LIST_DIR}/test_store_log.c cx_store)
