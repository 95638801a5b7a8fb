# lighthouse_generate_presets(<out.cpp>): writes a C++ file that defines
# lighthouse::config::embedded_presets() from configs/*.toml (name = file
# name without .toml). Editing a preset re-runs CMake. Used by the config
# library and by the config fuzz target.
function(lighthouse_generate_presets out_file)
  get_filename_component(root ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../.. ABSOLUTE)
  file(GLOB files CONFIGURE_DEPENDS ${root}/configs/*.toml)
  list(SORT files)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${files})
  set(LIGHTHOUSE_PRESET_ENTRIES "")
  foreach(f ${files})
    get_filename_component(name ${f} NAME_WE)
    file(READ ${f} text)
    string(APPEND LIGHTHOUSE_PRESET_ENTRIES "      {\"${name}\", R\"lhpreset(${text})lhpreset\"},\n")
  endforeach()
  configure_file(${CMAKE_CURRENT_FUNCTION_LIST_DIR}/presets.cpp.in ${out_file} @ONLY)
endfunction()
