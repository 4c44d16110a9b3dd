# The Debian package: `cpack -G DEB` in the build directory makes
# fib-server_VERSION-RELEASE_ARCH.deb from the install rules, with what only
# a package installs in component "deb" (never installed by
# `cmake --install`): the systemd unit where Debian keeps units, the
# copyright file, the changelogs and the lintian overrides. Dependencies
# come from dpkg-shlibdeps; the maintainer scripts (packaging/postinst,
# prerm, postrm) handle the unit as dh_installsystemd would, without enabling
# or starting it. tests/deploy/package_check.sh builds, lints, installs,
# enables, removes and purges it.

set(FIB_SERVER_DEB_RELEASE 1)
set(FIB_SERVER_DEB_VERSION ${PROJECT_VERSION}-${FIB_SERVER_DEB_RELEASE})
set(CPACK_PACKAGE_CONTACT "fib_server maintainers <fib-server@example.org>")
# When the package was made (SOURCE_DATE_EPOCH, when set, for a reproducible one).
string(TIMESTAMP FIB_SERVER_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)

set(deb ${PROJECT_BINARY_DIR}/deb)
# Read at configure time: an edit configures again.
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/deploy/fib_server.service
             ${PROJECT_SOURCE_DIR}/packaging/lintian-overrides)
# The copyright file: the licence in Debian's machine-readable format.
file(READ ${PROJECT_SOURCE_DIR}/LICENSE license)
string(REGEX REPLACE "^MIT License\n\n(Copyright[^\n]*\n\n)?" "" license "${license}")
string(STRIP "${license}" license)
string(REGEX REPLACE "\n\n" "\n.\n" license "${license}")
string(REPLACE "\n" "\n " license "${license}")
set(FIB_SERVER_LICENSE_TEXT " ${license}")
configure_file(${PROJECT_SOURCE_DIR}/packaging/copyright.in ${deb}/copyright @ONLY)
configure_file(${PROJECT_SOURCE_DIR}/packaging/changelog.Debian.in ${deb}/changelog.Debian @ONLY)
# The unit starting /usr/bin/fib_server.
file(READ ${PROJECT_SOURCE_DIR}/deploy/fib_server.service unit)
string(REPLACE "/usr/local/bin/fib_server" "/usr/bin/fib_server" unit "${unit}")
file(WRITE ${deb}/fib_server.service "${unit}")
# Changelogs compressed as Debian has them (-n: no name or time stamp inside).
set(fib_server_changelogs ${deb}/changelog.gz ${deb}/changelog.Debian.gz)
add_custom_command(
  OUTPUT ${fib_server_changelogs}
  COMMAND sh -c "gzip -9n -c \"$1\" > \"$2\" && gzip -9n -c \"$3\" > \"$4\"" gzip
          ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${deb}/changelog.gz ${deb}/changelog.Debian ${deb}/changelog.Debian.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${deb}/changelog.Debian
  VERBATIM)
add_custom_target(deb_files ALL DEPENDS ${fib_server_changelogs})

install(FILES ${deb}/copyright ${fib_server_changelogs} DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT deb EXCLUDE_FROM_ALL)
# Debian 12 keeps packaged units in /lib/systemd/system.
install(FILES ${deb}/fib_server.service DESTINATION /lib/systemd/system COMPONENT deb EXCLUDE_FROM_ALL)
# What lintian is to accept in this package, each with its reason.
configure_file(${PROJECT_SOURCE_DIR}/packaging/lintian-overrides ${deb}/lintian/fib-server COPYONLY)
install(FILES ${deb}/lintian/fib-server DESTINATION share/lintian/overrides COMPONENT deb EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fib-server)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# Installs into a staging DESTDIR with the real prefix, so that the unit's
# ExecStart says /usr/bin and absolute destinations (/lib) stay inside the package.
set(CPACK_SET_DESTDIR ON)
# One package from the default component and "deb" ("plain" is the plain
# install's LICENSE and CHANGELOG.md, which the package has as copyright
# and changelog.gz).
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL Unspecified deb)
set(CPACK_STRIP_FILES ON)
# Then .comment and .note go too, as dh_strip has it.
set(CPACK_FIB_SERVER_STRIP ${CMAKE_STRIP})
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/packaging/strip_sections.cmake)
set(CPACK_DEBIAN_PACKAGE_NAME fib-server)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${FIB_SERVER_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The systemd unit's maintainer scripts. deb-systemd-helper and
# deb-systemd-invoke come from init-system-helpers, which is Essential (and
# has had every action they use for a decade): no Depends, as
# dh_installsystemd adds none. Nor on systemd: the programs run without it.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/postinst ${PROJECT_SOURCE_DIR}/packaging/prerm ${PROJECT_SOURCE_DIR}/packaging/postrm)
# Mode 0755 for the scripts, 0644 for the rest, whatever the checkout has.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "TCP Fibonacci server and its load generator")
# CPack indents it under the summary and writes its empty line as " .".
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "fib_server answers each line holding a number n with fib(n), computed the
slow recursive way on purpose so that every request costs real CPU: the
service of the classic comparison of Python threads, coroutines and Go's
goroutines. It runs a thread per connection (or one connection at a time,
or coroutines on event loops), stops gracefully on SIGTERM, and serves
Prometheus metrics with --metrics.

fib_perf is its load generator: closed or open loop, latency percentiles,
every answer checked.")
include(CPack)
