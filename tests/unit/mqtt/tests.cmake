# MQTT codec unit tests.
cx_unit_test(test_mqtt_codec ${CMAKE_CURRENT_LIST_DIR}/test_codec.c cx_mqtt)
cx_unit_test(test_mqtt_validate ${CMAKE_CURRENT_LIST_DIR}/test_validate.c cx_mqtt)
