# Integration tests: each tests/integration/test_*.py file starts the real culex binary
# (harness.py) and drives it with paho-mqtt, mosquitto_pub/mosquitto_sub and raw sockets.
# Every file is registered twice, once per worker setting (CULEX_TEST_WORKERS=1 and 4).
# Guarded so that the build works before the broker target exists.
if(TARGET culex)
    set(CULEX_INTEGRATION_FILES
        test_01_connect
        test_02_publish_qos
        test_03_retain
        test_04_will
        test_05_session
        test_06_shared
        test_07_v5_features
        test_08_malformed
        test_09_cli_config
        test_10_sys
        test_11_limits
        test_12_cli_clients)
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
