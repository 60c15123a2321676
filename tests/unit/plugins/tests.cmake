# Plugins tested in isolation: testhost.c is a minimal culex_host_api that dlopens a plugin
# and fires events at it, so a plugin's own behaviour is tested without the broker.
add_library(cx_testhost STATIC ${CMAKE_CURRENT_LIST_DIR}/testhost.c)
target_include_directories(cx_testhost PUBLIC ${CMAKE_SOURCE_DIR}/include ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(cx_testhost PUBLIC ${CMAKE_DL_LIBS} Threads::Threads)

# Loads any plugin from the command line (used by tests/plugins/template_build.sh).
add_executable(plugin_loadcheck ${CMAKE_CURRENT_LIST_DIR}/plugin_loadcheck.c)
target_link_libraries(plugin_loadcheck PRIVATE cx_testhost)

if(TARGET auth_file)
    cx_unit_test(test_auth_file ${CMAKE_CURRENT_LIST_DIR}/test_auth_file.c
                 cx_testhost culex_plugin_sdk)
    add_dependencies(test_auth_file auth_file)
    target_compile_definitions(test_auth_file PRIVATE
        AUTH_FILE_SO="$<TARGET_FILE:auth_file>"
        MOSQUITTO_PASSWD="/usr/bin/mosquitto_passwd")
endif()
