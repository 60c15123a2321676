# Plugin tests that need an installed tree or more than one process.

# contrib/plugin-template builds out of tree against `cmake --install` of this build, with
# pkg-config, exports only culex_plugin_entry, and loads and works in the test host.
if(NOT TARGET culex_plugin_sdk)
    return()
endif()
string(REPLACE ";" "," _cx_tpl_san "${CULEX_SANITIZE}")
add_test(NAME plugin_template_build
         COMMAND /bin/sh ${CMAKE_CURRENT_LIST_DIR}/template_build.sh
                 ${CMAKE_COMMAND} ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}
                 $<TARGET_FILE:plugin_loadcheck> "${_cx_tpl_san}")
set_tests_properties(plugin_template_build PROPERTIES LABELS integration TIMEOUT 300)
