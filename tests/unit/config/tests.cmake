cx_unit_test(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c cx_config)
