# The man pages: docs/man/NAME.SECTION.scd, turned into roff by scdoc at
# build time (build/man/NAME.SECTION) and installed under the man
# directory. scdoc, because its source reads like the rest of docs/
# (Markdown-like, no roff escapes to get wrong) and it writes plain man(7)
# roff that man-db, groff and mandoc render without warnings; it is a
# small C program packaged by Debian and most other distributions.
option(BH_MAN "Build and install the man pages (needs scdoc)" ON)
if(NOT BH_MAN)
  return()
endif()
find_program(SCDOC scdoc)
if(NOT SCDOC)
  message(FATAL_ERROR "scdoc not found: install it (scripts/setup does) "
                      "or configure with -DBH_MAN=OFF to build no man pages")
endif()
file(GLOB BH_MAN_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/*.scd)
set(BH_MAN_PAGES)
foreach(src ${BH_MAN_SOURCES})
  get_filename_component(page ${src} NAME)
  string(REGEX REPLACE "\\.scd$" "" page ${page})
  string(REGEX MATCH "[0-9]$" section ${page})
  set(out ${CMAKE_BINARY_DIR}/man/${page})
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${CMAKE_COMMAND} -DSCDOC=${SCDOC} -DIN=${src} -DOUT=${out}
            -P ${CMAKE_SOURCE_DIR}/cmake/scdoc.cmake
    DEPENDS ${src} ${CMAKE_SOURCE_DIR}/cmake/scdoc.cmake
    COMMENT "scdoc ${page}")
  list(APPEND BH_MAN_PAGES ${out})
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man ALL DEPENDS ${BH_MAN_PAGES})
