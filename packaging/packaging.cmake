# SPDX-License-Identifier: MIT
# Installing luabpf as a system service, and the Debian package (CPack).
# Included from the top CMakeLists.txt after the core install() rules.
#
#   cmake --install build --prefix /usr/local       # or any PREFIX
#   cmake --build build --target package           # build/luabpf_VERSION_ARCH.deb (prefix /usr)
#
# Paths under the prefix are relative, so `--prefix P` and DESTDIR staging
# both work. Two things depend on the prefix at install time, not at
# configure time: the unit's ExecStart (PREFIX/bin/luabpf) and the config
# directory (/etc for the /usr prefix, as Debian wants; PREFIX/etc
# otherwise), so they are written by packaging/install.cmake then.

install(FILES ${CMAKE_SOURCE_DIR}/docs/luabpf.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/luabpf.tmpfiles DESTINATION lib/tmpfiles.d
  RENAME luabpf.conf)
# Building your own BPF objects (docs/your-own-bpf.md): luabpf's headers,
# pkg-config's luabpf.pc (written at install time, below), the CMake package
# (luabpf_bpf_objects(), running `luabpf cc`), and bash completion.
file(GLOB LUABPF_BPF_HEADERS ${CMAKE_SOURCE_DIR}/bpf/include/*.h)
install(FILES ${LUABPF_BPF_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/luabpf)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/completion/luabpf
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
set(LUABPF_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/luabpf)
file(RELATIVE_PATH _rel_bin /${LUABPF_CMAKE_DIR} /${CMAKE_INSTALL_BINDIR})
file(RELATIVE_PATH _rel_inc /${LUABPF_CMAKE_DIR} /${CMAKE_INSTALL_INCLUDEDIR}/luabpf)
set(LUABPF_CONFIG_BINDIR "\${CMAKE_CURRENT_LIST_DIR}/${_rel_bin}")
set(LUABPF_CONFIG_INCLUDEDIR "\${CMAKE_CURRENT_LIST_DIR}/${_rel_inc}")
configure_file(${CMAKE_SOURCE_DIR}/packaging/luabpfConfig.cmake.in
  ${CMAKE_BINARY_DIR}/packaging/install/luabpfConfig.cmake @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/install/luabpfConfig.cmake DESTINATION ${LUABPF_CMAKE_DIR})
# The build tree is a package too: CMAKE_PREFIX_PATH=<build dir> finds it.
set(LUABPF_CONFIG_BINDIR ${CMAKE_BINARY_DIR})
set(LUABPF_CONFIG_INCLUDEDIR ${CMAKE_SOURCE_DIR}/bpf/include)
configure_file(${CMAKE_SOURCE_DIR}/packaging/luabpfConfig.cmake.in
  ${CMAKE_BINARY_DIR}/lib/cmake/luabpf/luabpfConfig.cmake @ONLY)

install(CODE "
  set(LUABPF_VERSION \"${PROJECT_VERSION}\")
  set(LUABPF_INCLUDEDIR_REL \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(LUABPF_LIBDIR_REL \"${CMAKE_INSTALL_LIBDIR}\")
  set(LUABPF_SRC \"${CMAKE_SOURCE_DIR}\")
  set(LUABPF_STAGE \"${CMAKE_BINARY_DIR}/packaging\")
  set(LUABPF_BINDIR_REL \"${CMAKE_INSTALL_BINDIR}\")
  set(LUABPF_DATADIR_REL \"${CMAKE_INSTALL_DATADIR}\")
  set(LUABPF_DOCDIR_REL \"${CMAKE_INSTALL_DOCDIR}\")
  include(\"${CMAKE_SOURCE_DIR}/packaging/install.cmake\")")

# ---- Debian package -----------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME luabpf)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "luabpf maintainers <luabpf@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Lua-scriptable eBPF host: XDP load balancer, DDoS filter, tracing")
set(CPACK_PACKAGE_DESCRIPTION "luabpf loads BPF objects, attaches programs and exposes maps, links
and ring buffers to LuaJIT scripts running on one event loop. It ships an
XDP L4 load balancer (Maglev, NAT/DSR, health checks), an XDP DDoS filter,
an sk_lookup dispatcher and tracing examples, run as systemd services
(luabpf@NAME.service) and reloaded without dropping connections.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # luabpf_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/luabpf/luabpf")
# Shared libraries from dpkg-shlibdeps (libluajit-5.1-2, libuv1, libbpf1,
# libelf1, zlib1g, lua-luv, libc6), with the versions this build needs.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# What scripts call at run time: ip (lb, filter, netns), ping (neighbour
# priming), mount/mountpoint/nsenter (the unit's bpffs step), kill (the
# unit's ExecReload: /bin/kill is procps', which minbase Debian lacks).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "iproute2, util-linux, procps")
# libedit2: the REPL's line editing, loaded through the FFI (shlibdeps can't see it).
# clang, libbpf-dev, bpftool: `luabpf cc` (your own BPF programs).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libedit2, iputils-ping, bpftool")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "clang, libbpf-dev, bash-completion")
# Files under /etc are the operator's: dpkg keeps their edits on upgrade.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
  ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
  ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Stage with DESTDIR and the real prefix, so install.cmake sees /usr and
# puts the config directory at /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
