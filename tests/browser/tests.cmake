# The browser test (run.js): MQTT.js in Debian's chromium against culex over ws:// and wss://.
# Registered when node is installed; it reports "skipped" (exit 77) until install.sh has
# installed chromium and the npm packages. The screenshot goes to the build tree.
find_program(CULEX_NODE node)
if(TARGET culex AND CULEX_NODE)
    add_test(NAME browser_websockets COMMAND ${CULEX_NODE} run.js
             WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
    set_tests_properties(browser_websockets PROPERTIES
        LABELS integration
        TIMEOUT 120
        SKIP_RETURN_CODE 77
        ENVIRONMENT "CULEX_TEST_BROKER=$<TARGET_FILE:culex>;CULEX_BROWSER_ARTIFACTS=${CMAKE_BINARY_DIR}/tests/browser-artifacts")
endif()
