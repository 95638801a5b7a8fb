# config_fuzz: the presets built into the config library (configs/*.toml).
include(${LIGHTHOUSE_ROOT}/csrc/config/presets.cmake)
lighthouse_generate_presets(${CMAKE_CURRENT_BINARY_DIR}/presets.cpp)
target_sources(${FUZZ_TARGET} PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/presets.cpp)
