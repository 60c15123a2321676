# Integration tests: each tests/integration/test_*.py file starts the real culex binary
# (harness.py) and drives it with paho-mqtt, mosquitto_pub/mosquitto_sub and raw sockets.
# Every file is registered twice, once per worker setting (CULEX_TEST_WORKERS=1 and 4).
# Guarded so that the build works before the broker target exists.
if(TARGET culex)
    file(GLOB _cx_integ_files RELATIVE ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
    list(SORT _cx_integ_files)
    set(CULEX_INTEGRATION_FILES)
    foreach(f IN LISTS _cx_integ_files)
        string(REGEX REPLACE "[.]py$" "" f "${f}")
        list(APPEND CULEX_INTEGRATION_FILES ${f})
    endforeach()
    foreach(file IN LISTS CULEX_INTEGRATION_FILES)
        foreach(workers 1 4)
            set(name integ_${file}_w${workers})
            add_test(NAME ${name}
                     COMMAND /usr/bin/python3 -m unittest -v ${file}
                     WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
            set_tests_properties(${name} PROPERTIES
                LABELS integration
                TIMEOUT 300
                ENVIRONMENT "CULEX_TEST_BROKER=$<TARGET_FILE:culex>;CULEX_TEST_KIND=culex;CULEX_TEST_WORKERS=${workers}")
        endforeach()
    endforeach()
endif()
