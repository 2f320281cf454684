# install_systemd_unit.cmake — run by `cmake --install` (CMakeLists.txt sets the SMTPSD_*
# variables): writes contrib/systemd/smtpsd.service into the unit directory with the paths of
# this installation (smtpsd in the prefix's sbin, the README in its doc directory) in place
# of the /usr/local/bin that the file names for a copy by hand. DESTDIR is honoured.
file(READ "${SMTPSD_UNIT_SOURCE}" unit)
foreach(name smtpsd_sbindir smtpsd_docdir smtpsd_unit_dir)
  string(TOUPPER ${name} variable)
  if(IS_ABSOLUTE "${${variable}}")
    set(${name} "${${variable}}")
  else()
    set(${name} "${CMAKE_INSTALL_PREFIX}/${${variable}}")
  endif()
endforeach()
string(REPLACE "/usr/local/bin/smtpsd " "${smtpsd_sbindir}/smtpsd " unit "${unit}")
string(REPLACE "file:/usr/local/share/doc/smtpsd/" "file:${smtpsd_docdir}/" unit "${unit}")
if(NOT unit MATCHES "\nExecStart=${smtpsd_sbindir}/smtpsd ")
  message(FATAL_ERROR "${SMTPSD_UNIT_SOURCE}: ExecStart= no longer names /usr/local/bin/smtpsd")
endif()
set(destination "$ENV{DESTDIR}${smtpsd_unit_dir}")
message(STATUS "Installing: ${destination}/smtpsd.service")
file(MAKE_DIRECTORY "${destination}")
file(WRITE "${destination}/smtpsd.service" "${unit}")
file(CHMOD "${destination}/smtpsd.service" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${destination}/smtpsd.service")
