# cmd/agentry/version.cmake - the git revision 'agentry version' reports, found at build time.
#
#   cmake -DSRC=<source dir> -DVERSION=<x.y.z> -DOUT=<header> [-DGIT_REV=<rev>] -P version.cmake
#       writes <header> (AGENTRY_GIT_REV, AGENTRY_VERSION_GIT), but only when its text changes:
#       the build runs this every time (a new commit needs no reconfigure), and an unchanged
#       tree must not recompile or relink anything.
#   cmake -DSRC=<source dir> [-DGIT_REV=<rev>] -DPRINT=1 -P version.cmake
#       prints the revision alone (make image passes it to the container build, whose context
#       has no .git).
#
# The revision: GIT_REV when given and not empty (CMake's AGENTRY_GIT_REV, for a tree without
# .git, such as the image's build stage); else git's short hash of HEAD, with "-dirty" when a
# tracked file differs from HEAD (untracked files do not count, as for git describe --dirty);
# else "unknown" (no git, or no repository: a tarball).
if(GIT_REV)
  # It lands in a C string and a package's version: no quotes, spaces or slashes.
  if(NOT GIT_REV MATCHES "^[0-9A-Za-z._+-]+$")
    message(FATAL_ERROR "AGENTRY_GIT_REV '${GIT_REV}' is not a revision (letters, digits, . _ + -)")
  endif()
else()
  set(GIT_REV unknown)
  find_program(GIT git)
  if(GIT)
    execute_process(COMMAND ${GIT} -C ${SRC} rev-parse --short HEAD
                    OUTPUT_VARIABLE rev RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET)
    if(rc EQUAL 0 AND rev)
      set(GIT_REV ${rev})
      # status (not diff-index) refreshes the index first: a touched but unchanged file is clean.
      execute_process(COMMAND ${GIT} -C ${SRC} status --porcelain --untracked-files=no
                      OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET)
      if(NOT rc EQUAL 0 OR changes)
        string(APPEND GIT_REV -dirty)
      endif()
    endif()
  endif()
endif()

if(PRINT)
  execute_process(COMMAND ${CMAKE_COMMAND} -E echo ${GIT_REV})
  return()
endif()

# What a node registers as its version: semver build metadata, no spaces (the nodes table).
if(GIT_REV STREQUAL unknown)
  set(full ${VERSION})
else()
  set(full ${VERSION}+${GIT_REV})
endif()
set(text "/* Generated at build time by cmd/agentry/version.cmake: do not edit. */
#define AGENTRY_GIT_REV \"${GIT_REV}\"
#define AGENTRY_VERSION_GIT \"${full}\"
")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
