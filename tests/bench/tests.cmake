# tests/bench/side_by_side.py (issue 9's matrix, culex beside Mosquitto) is run by hand; its
# smoke test runs one cheap scenario for a second per broker (docs/performance.md).
if(TARGET culex AND TARGET culex_bench)
    add_test(NAME bench_side_by_side
             COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_side_by_side.py -v)
    set_tests_properties(bench_side_by_side PROPERTIES
        LABELS integration
        TIMEOUT 90
        ENVIRONMENT "CULEX_BENCH=$<TARGET_FILE:culex_bench>;CULEX_BROKER=$<TARGET_FILE:culex>")
endif()
