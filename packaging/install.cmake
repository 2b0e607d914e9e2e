# SPDX-License-Identifier: MIT
# Runs at install time (cmake --install, cpack): writes what depends on the
# install prefix. Set by packaging.cmake: LUABPF_SRC, LUABPF_STAGE and the
# relative LUABPF_*_REL directories.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc "/etc")
else()
  set(etc "${prefix}/etc")
endif()
set(LUABPF_BINDIR "${prefix}/${LUABPF_BINDIR_REL}")
set(LUABPF_DOCDIR "${prefix}/${LUABPF_DOCDIR_REL}")
set(LUABPF_EXAMPLES "${prefix}/${LUABPF_DATADIR_REL}/luabpf/examples")
set(LUABPF_ETC "${etc}/luabpf")

function(luabpf_configure src dst)
  file(READ "${src}" text)
  string(CONFIGURE "${text}" text @ONLY)
  file(WRITE "${dst}" "${text}")
endfunction()

file(MAKE_DIRECTORY "${LUABPF_STAGE}/etc")
luabpf_configure("${LUABPF_SRC}/packaging/luabpf@.service.in" "${LUABPF_STAGE}/luabpf@.service")
file(INSTALL "${LUABPF_STAGE}/luabpf@.service" DESTINATION "${prefix}/lib/systemd/system")
# pkg-config's luabpf.pc, for this prefix.
luabpf_configure("${LUABPF_SRC}/packaging/luabpf.pc.in" "${LUABPF_STAGE}/luabpf.pc")
file(INSTALL "${LUABPF_STAGE}/luabpf.pc" DESTINATION "${prefix}/${LUABPF_LIBDIR_REL}/pkgconfig")

foreach(f README lb.env.example ddos_filter.env.example)
  luabpf_configure("${LUABPF_SRC}/packaging/etc/${f}" "${LUABPF_STAGE}/etc/${f}")
  file(INSTALL "${LUABPF_STAGE}/etc/${f}" DESTINATION "${LUABPF_ETC}")
endforeach()
