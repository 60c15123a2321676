# Each area keeps its own list in unit/<area>/tests.cmake; they are all included here.
file(GLOB _cx_unit_lists ${CMAKE_CURRENT_LIST_DIR}/*/tests.cmake)
foreach(_f ${_cx_unit_lists})
    include(${_f})
endforeach()
