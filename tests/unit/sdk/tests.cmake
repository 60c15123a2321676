# SDK (plugin-api/) unit tests, the pwcheck helper and the culex_passwd interop test.
cx_unit_test(test_sdk_password ${CMAKE_CURRENT_LIST_DIR}/test_password.c culex_plugin_sdk)
cx_unit_test(test_sdk_acl ${CMAKE_CURRENT_LIST_DIR}/test_acl.c culex_plugin_sdk)
cx_unit_test(test_sdk_cache ${CMAKE_CURRENT_LIST_DIR}/test_cache.c culex_plugin_sdk)
cx_unit_test(test_sdk_options ${CMAKE_CURRENT_LIST_DIR}/test_options.c culex_plugin_sdk)

add_executable(sdk_pwcheck ${CMAKE_CURRENT_LIST_DIR}/pwcheck.c)
target_link_libraries(sdk_pwcheck PRIVATE culex_plugin_sdk)

# Interop with Debian's mosquitto / mosquitto_passwd (skips when they are not installed).
add_test(NAME culex_passwd_interop
         COMMAND /bin/sh ${PROJECT_SOURCE_DIR}/tests/tools/test_culex_passwd.sh
                 $<TARGET_FILE:culex_passwd> $<TARGET_FILE:sdk_pwcheck>)
set_tests_properties(culex_passwd_interop PROPERTIES
    LABELS integration TIMEOUT 120)
