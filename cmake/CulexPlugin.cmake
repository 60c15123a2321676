# CulexPlugin.cmake: how a culex plugin is built, and what is installed for third-party ones.
#
#   culex_add_plugin(NAME SOURCES a.c b.c ... [DEPS lib ...])
#
# builds NAME.so (a MODULE library, no "lib" prefix) the way plugin.h asks: hidden visibility
# so that only CULEX_PLUGIN_EXPORT symbols (culex_plugin_entry) escape, and -Wl,--no-undefined
# so that any reference to a broker symbol fails here, at link time, instead of at dlopen.
# It links the SDK (culex_plugin_sdk) and DEPS privately; --exclude-libs keeps the symbols of
# those static archives out of the plugin's dynamic symbol table, so two plugins built
# against different SDK versions never interpose on each other.
#
# The .so lands in ${CMAKE_BINARY_DIR}/plugins/ (the broker looks for first-party plugins
# there when run from the build tree) and is installed into ${CMAKE_INSTALL_LIBDIR}/culex/.
#
#   culex_install_plugin_devel()
#
# installs what an out-of-tree plugin needs: include/culex/*.h (with sdk/) and
# culex-plugin.pc. Called once from the root CMakeLists.txt.

include_guard(GLOBAL)
include(GNUInstallDirs)

set(CULEX_PLUGIN_OUTPUT_DIR "${CMAKE_BINARY_DIR}/plugins")

function(culex_add_plugin name)
    cmake_parse_arguments(PARSE_ARGV 1 _cxp "" "" "SOURCES;DEPS")
    if(NOT _cxp_SOURCES)
        message(FATAL_ERROR "culex_add_plugin(${name}): no SOURCES")
    endif()
    if(_cxp_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "culex_add_plugin(${name}): unexpected ${_cxp_UNPARSED_ARGUMENTS}")
    endif()

    add_library(${name} MODULE ${_cxp_SOURCES})
    set_target_properties(${name} PROPERTIES
        PREFIX ""
        C_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON
        # $<1:...> keeps multi-config generators from appending a per-config folder.
        LIBRARY_OUTPUT_DIRECTORY "$<1:${CULEX_PLUGIN_OUTPUT_DIR}>")
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/include)
    target_link_libraries(${name} PRIVATE culex_plugin_sdk ${_cxp_DEPS})
    target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,--exclude-libs,ALL)
    install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/culex)
endfunction()

# The .pc file is written at install time, not at configure time, so that it names the prefix
# actually installed into (`cmake --install build --prefix /opt/culex` gives a working
# culex-plugin.pc in /opt/culex). DESTDIR is honoured and does not leak into the file.
#
# The SDK is a static archive, so its own dependencies (libcrypto, libxcrypt, libargon2 for
# the password functions) go into Requires.private / Libs.private, and a plugin that uses
# those functions links with `pkg-config --static --libs culex-plugin`. plugin-api/ may name
# them as pkg-config modules in the global property CULEX_PLUGIN_SDK_PC_REQUIRES; otherwise
# they are derived as -l flags from culex_plugin_sdk's link interface.
function(_culex_sdk_private_libs out)
    set(_libs)
    set(_deps)
    if(TARGET culex_plugin_sdk)
        get_target_property(_deps culex_plugin_sdk INTERFACE_LINK_LIBRARIES)
        get_target_property(_sdkdir culex_plugin_sdk SOURCE_DIR)
    endif()
    foreach(_d IN LISTS _deps)
        if(_d STREQUAL "Threads::Threads")
            list(APPEND _libs -pthread)
        elseif(_d MATCHES "^PkgConfig::(.+)$")
            # pkg_check_modules(<P> IMPORTED_TARGET ...) in the SDK's folder: the imported
            # target is not visible here, its <P>_LDFLAGS variable is.
            get_directory_property(_ld DIRECTORY ${_sdkdir} DEFINITION ${CMAKE_MATCH_1}_LDFLAGS)
            list(APPEND _libs ${_ld})
        elseif(_d MATCHES "/lib([^/]+)\\.(so|a)(\\.[0-9.]+)?$")
            list(APPEND _libs -l${CMAKE_MATCH_1})
        elseif(_d MATCHES "^-")
            list(APPEND _libs ${_d})
        elseif(_d MATCHES "^[A-Za-z0-9_+-]+$" AND NOT TARGET ${_d})
            list(APPEND _libs -l${_d})
        endif()
    endforeach()
    # The compiler's own search path needs no -L.
    foreach(_dir IN LISTS CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
        list(REMOVE_ITEM _libs "-L${_dir}")
    endforeach()
    list(REMOVE_DUPLICATES _libs)
    string(REPLACE ";" " " _libs "${_libs}")
    set(${out} "${_libs}" PARENT_SCOPE)
endfunction()

function(culex_install_plugin_devel)
    get_property(_req GLOBAL PROPERTY CULEX_PLUGIN_SDK_PC_REQUIRES)
    if(_req)
        string(REPLACE ";" " " _req "${_req}")
        set(_libs "-pthread")
    else()
        _culex_sdk_private_libs(_libs)
    endif()
    install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/culex
            DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
            FILES_MATCHING PATTERN "*.h")

    set(_tpl "${CMAKE_SOURCE_DIR}/cmake/culex-plugin.pc.in")
    install(CODE "
        set(_prefix \"\${CMAKE_INSTALL_PREFIX}\")
        set(_libdir \"${CMAKE_INSTALL_LIBDIR}\")
        set(_incdir \"${CMAKE_INSTALL_INCLUDEDIR}\")
        if(NOT IS_ABSOLUTE \"\${_libdir}\")
            set(_libdir \"\\\${prefix}/\${_libdir}\")
        endif()
        if(NOT IS_ABSOLUTE \"\${_incdir}\")
            set(_incdir \"\\\${prefix}/\${_incdir}\")
        endif()
        set(CULEX_PC_PREFIX \"\${_prefix}\")
        set(CULEX_PC_LIBDIR \"\${_libdir}\")
        set(CULEX_PC_INCLUDEDIR \"\${_incdir}\")
        set(CULEX_PC_VERSION \"${PROJECT_VERSION}\")
        set(CULEX_PC_PRIVATE \"\")
        if(NOT \"${_req}\" STREQUAL \"\")
            string(APPEND CULEX_PC_PRIVATE \"Requires.private: ${_req}\\n\")
        endif()
        if(NOT \"${_libs}\" STREQUAL \"\")
            string(APPEND CULEX_PC_PRIVATE \"Libs.private: ${_libs}\\n\")
        endif()
        set(_pcdir \"${CMAKE_INSTALL_LIBDIR}/pkgconfig\")
        if(NOT IS_ABSOLUTE \"\${_pcdir}\")
            set(_pcdir \"\${CMAKE_INSTALL_PREFIX}/\${_pcdir}\")
        endif()
        set(_pc \"\$ENV{DESTDIR}\${_pcdir}/culex-plugin.pc\")
        message(STATUS \"Installing: \${_pc}\")
        configure_file(\"${_tpl}\" \"\${_pc}\" @ONLY)
        # The manifest lists paths without DESTDIR, like CMake's own entries.
        list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_pcdir}/culex-plugin.pc\")
    ")
endfunction()
