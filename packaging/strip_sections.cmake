# Run by CPack (CPACK_PRE_BUILD_SCRIPTS) on the staged files, after its own
# strip: removes the .comment and .note sections from the programs, as
# dh_strip does (compiler version strings, of no use at run time).
file(GLOB_RECURSE programs LIST_DIRECTORIES false "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/usr/bin/*")
if(NOT programs)
  message(FATAL_ERROR "strip_sections: no programs staged in ${CPACK_TEMPORARY_INSTALL_DIRECTORY}")
endif()
foreach(program IN LISTS programs)
  execute_process(COMMAND ${CPACK_FIB_SERVER_STRIP} --remove-section=.comment --remove-section=.note ${program}
                  COMMAND_ERROR_IS_FATAL ANY)
endforeach()
