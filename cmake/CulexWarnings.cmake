# Warnings and sanitizers applied to every culex target.
add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
                    -Wno-unused-parameter -fno-strict-aliasing)
add_compile_definitions(_GNU_SOURCE)
if(CULEX_WERROR)
    add_compile_options(-Werror)
endif()
if(CULEX_SANITIZE)
    string(REPLACE ";" "," _cx_san "${CULEX_SANITIZE}")
    add_compile_options(-fsanitize=${_cx_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${_cx_san})
endif()
