# Runs at install time (install(CODE) in CMakeLists.txt), because only
# then is the prefix known: `cmake --install build --prefix P` overrides
# whatever was configured. Places what depends on the prefix:
#   --prefix /usr   -> /etc/bhprobe-lua, /usr/share/bhprobe-lua/policies
#   --prefix P      -> P/etc/bhprobe-lua, P/share/bhprobe-lua/policies
# (GNUInstallDirs' rule for /usr; everything else stays under P).
# /etc is the operator's: this creates the policy override directory and
# the services' default settings only when they are missing, and never
# replaces a file there (the shipped default is also installed as an
# example, to compare with). The systemd unit is generated with the real
# paths. DESTDIR is honoured (file(INSTALL) adds it; the tests of what
# exists add it by hand).
# Inputs: BH_SOURCE_DIR, BH_BINARY_DIR, BH_BINDIR, BH_DATADIR, BH_DOCDIR
# (GNUInstallDirs values, relative or absolute), BH_UNIT_DIR (the
# configured unit directory, may be empty), BH_UNIT_DIR_USR (systemd.pc's
# unit directory, may be empty).
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(SYSCONFDIR "/etc")
else()
  set(SYSCONFDIR "${prefix}/etc")
endif()
foreach(v BINDIR DATADIR DOCDIR)
  if(IS_ABSOLUTE "${BH_${v}}")
    set(${v} "${BH_${v}}")
  else()
    set(${v} "${prefix}/${BH_${v}}")
  endif()
endforeach()
set(POLICYDIR "${DATADIR}/bhprobe-lua/policies")
set(OVERRIDEDIR "${SYSCONFDIR}/bhprobe-lua/policies")
if(BH_UNIT_DIR)
  set(unitdir "${BH_UNIT_DIR}")
elseif(prefix STREQUAL "/usr" AND BH_UNIT_DIR_USR)
  set(unitdir "${BH_UNIT_DIR_USR}")
else()
  set(unitdir "${prefix}/lib/systemd/system")
endif()

set(gen "${BH_BINARY_DIR}/install")
configure_file("${BH_SOURCE_DIR}/etc/systemd/bhprobe-lua@.service.in"
               "${gen}/bhprobe-lua@.service" @ONLY)
file(INSTALL "${gen}/bhprobe-lua@.service" DESTINATION "${unitdir}")

# The default settings: an example always, /etc only when it has none.
configure_file("${BH_SOURCE_DIR}/etc/bhprobe-lua/default.in" "${gen}/default" @ONLY)
file(INSTALL "${gen}/default" DESTINATION "${DOCDIR}/examples")
file(INSTALL "${BH_SOURCE_DIR}/etc/logrotate/bhprobe-lua" DESTINATION "${DOCDIR}/examples"
     RENAME logrotate)
set(etc "$ENV{DESTDIR}${SYSCONFDIR}/bhprobe-lua")
if(EXISTS "${etc}/default" OR IS_SYMLINK "${etc}/default")
  message(STATUS "Kept: ${SYSCONFDIR}/bhprobe-lua/default (exists; the shipped one is "
                 "${DOCDIR}/examples/default)")
else()
  file(INSTALL "${gen}/default" DESTINATION "${SYSCONFDIR}/bhprobe-lua")
endif()
if(NOT IS_DIRECTORY "${etc}/policies")
  message(STATUS "Installing: ${etc}/policies (empty: a policy placed here overrides "
                 "the one of that name in ${POLICYDIR})")
  file(MAKE_DIRECTORY "${etc}/policies")
endif()
# A policy in the override directory wins over the shipped one of the
# same name, also over a newer one: say which do (a copy left by an older
# install that put the policies in /etc would otherwise hide an update).
file(GLOB overrides RELATIVE "${etc}/policies" "${etc}/policies/*.lua")
foreach(name ${overrides})
  if(EXISTS "${BH_SOURCE_DIR}/etc/policies/${name}")
    message(STATUS "Note: ${OVERRIDEDIR}/${name} overrides the installed ${POLICYDIR}/${name}")
  endif()
endforeach()
