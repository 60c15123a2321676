cx_unit_test(test_subtree ${CMAKE_CURRENT_LIST_DIR}/test_subtree.c cx_broker_trie)
cx_unit_test(test_retain ${CMAKE_CURRENT_LIST_DIR}/test_retain.c cx_broker_trie)
cx_unit_test(test_levelmap ${CMAKE_CURRENT_LIST_DIR}/test_levelmap.c cx_broker_trie)
cx_unit_test(test_persist_rec ${CMAKE_CURRENT_LIST_DIR}/test_persist_rec.c cx_broker)
