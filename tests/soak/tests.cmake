# The soak (tests/soak/run.sh) runs 10 minutes by default and is run by hand. A 60 s run is
# registered with the label "soak" (ctest -L soak; ctest -LE soak leaves it out): memory
# after the warm-up, no lost QoS 1/2 message, a clean exit. Under a sanitizer only the
# accounted heap is judged, not RSS.
if(TARGET culex)
    add_test(NAME soak_60s COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh 60)
    set_tests_properties(soak_60s PROPERTIES
        LABELS soak
        TIMEOUT 400
        ENVIRONMENT "CULEX_SOAK_BROKER=$<TARGET_FILE:culex>;CULEX_SOAK_WORKERS=2;CULEX_SOAK_DIR=${CMAKE_CURRENT_BINARY_DIR}/soak-60s")
endif()
