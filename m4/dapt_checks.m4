# dapt's own configure macros: every failed check names the Debian package
# that provides what is missing, so a user can fix it in one step.

# DAPT_REQUIRE_PKG(VARIABLE-PREFIX, PKG-CONFIG-MODULE, DEBIAN-PACKAGE)
AC_DEFUN([DAPT_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 not found by pkg-config: install the Debian package $3 (apt-get install $3)])])
])

# DAPT_REQUIRE_LINK(FUNCTION, CFLAGS, LIBS, DEBIAN-PACKAGE, WHAT)
# Link-tests FUNCTION with the given flags; a prototype-free call is enough
# to prove the symbol resolves.
AC_DEFUN([DAPT_REQUIRE_LINK], [
  AC_MSG_CHECKING([for $1 ($5)])
  dapt_save_CFLAGS=$CFLAGS
  dapt_save_LIBS=$LIBS
  CFLAGS="$CFLAGS $2"
  LIBS="$3 $LIBS"
  AC_LINK_IFELSE([AC_LANG_CALL([], [$1])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([$1 does not link ($5): install the Debian package $4 (apt-get install $4)])])
  CFLAGS=$dapt_save_CFLAGS
  LIBS=$dapt_save_LIBS
])
