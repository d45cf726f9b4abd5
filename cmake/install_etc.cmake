# Runs at install time (install(CODE) in CMakeLists.txt), because only
# then is the prefix known: `cmake --install build --prefix P` overrides
# whatever was configured. Installs the policies and the systemd unit
# with paths that follow that prefix:
#   --prefix /usr   -> /etc/bhprobe-lua/policies, /usr/bin/bhprobe-lua
#   --prefix P      -> P/etc/bhprobe-lua/policies, P/bin/bhprobe-lua
# (GNUInstallDirs' rule for /usr; everything else stays under P).
# Inputs: BH_SOURCE_DIR, BH_BINARY_DIR, BH_BINDIR, BH_DOCDIR (relative
# GNUInstallDirs values).
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(SYSCONFDIR "/etc")
else()
  set(SYSCONFDIR "${prefix}/etc")
endif()
foreach(v BINDIR DOCDIR)
  if(IS_ABSOLUTE "${BH_${v}}")
    set(${v} "${BH_${v}}")
  else()
    set(${v} "${prefix}/${BH_${v}}")
  endif()
endforeach()
set(POLICYDIR "${SYSCONFDIR}/bhprobe-lua/policies")

file(INSTALL "${BH_SOURCE_DIR}/etc/policies/"
     DESTINATION "${POLICYDIR}" FILES_MATCHING PATTERN "*.lua")
set(unit "${BH_BINARY_DIR}/install/bhprobe-lua@.service")
configure_file("${BH_SOURCE_DIR}/etc/systemd/bhprobe-lua@.service.in"
               "${unit}" @ONLY)
file(INSTALL "${unit}" DESTINATION "${prefix}/lib/systemd/system")
