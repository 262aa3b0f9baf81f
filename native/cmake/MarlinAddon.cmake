# marlin_add_addon(NAME <name> ADDON <addon> SOURCES <files...>)
#
# One function every @marlin addon's CMakeLists.txt calls (run through cmake-js 8 with node-api-headers):
#   - a shared library <name>.node (PREFIX "", SUFFIX ".node"), C++17 / CUDA C++17, static cudart, -O3 release
#   - the shared device runtime, Node-API glue (runtime + GEMM exports) and kit host code (native/kit/host.cu)
#   - the addon's kernels: tools/gen-kernel-instances.mjs --addon <addon> writes, into <build>/generated (on the
#     include path), marlin_<addon>_instances.inc and one translation unit per variant and activation dtype of the
#     kernel-table.json variants whose "addon" is <addon>; regenerated whenever the generator or the table changes
#   - the release targets by default (MARLIN_RELEASE_CUDA_ARCHS: the platform packages ship exactly these and
#     tools/pack/check-binary.mjs checks them), fatbin compressed with -compress-mode=size; env MARLIN_CUDA_ARCHS
#     overrides ("90a" for fast dev builds; "NN" or "NN-real" = SASS, "NN-virtual" = PTX, "release" = the default)
#   - -lineinfo and ptxas resource report + spill warnings on every kernel; no L2 cache-hint policies anywhere
#   - only the C ABI (MARLIN_API) and the Node-API module entry are exported; everything else is hidden
#
# Example (packages/fp8/CMakeLists.txt):
#   cmake_minimum_required(VERSION 3.25)
#   project(marlin_fp8 LANGUAGES CXX CUDA)
#   include(${CMAKE_CURRENT_SOURCE_DIR}/../../native/cmake/MarlinAddon.cmake)
#   marlin_add_addon(NAME marlin_fp8 ADDON fp8 SOURCES native/binding.cc ${MARLIN_NATIVE_DIR}/kernels/fp8/fp8.cu)

get_filename_component(MARLIN_REPO_ROOT "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
set(MARLIN_NATIVE_DIR "${MARLIN_REPO_ROOT}/native")

if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

# Sources every addon compiles: the device runtime, the generic Node-API glue and the kit's host side
# (bench_binding.* belongs to the benchmark harness, tools/bench, which builds its own addon).
file(GLOB MARLIN_RUNTIME_SOURCES CONFIGURE_DEPENDS "${MARLIN_NATIVE_DIR}/runtime/*.cu" "${MARLIN_NATIVE_DIR}/runtime/*.cc")
file(GLOB MARLIN_NAPI_SOURCES CONFIGURE_DEPENDS "${MARLIN_NATIVE_DIR}/napi/*.cc")
list(FILTER MARLIN_NAPI_SOURCES EXCLUDE REGEX "bench_binding\\.cc$")
set(MARLIN_KIT_SOURCES "${MARLIN_NATIVE_DIR}/kit/host.cu")

find_program(MARLIN_NODE NAMES node nodejs REQUIRED)

# The targets every published binary carries (npm/<addon>-linux-x64-gnu config.sm / config.ptx list them): SASS for
# each GPU generation (8.6 / 8.9 have their own SASS: sm_80's runs there, but tuned for another SM), the sm_90a wgmma
# path, Blackwell, and compute_80 PTX that the driver JIT-compiles on anything newer (the mma.sync family only).
set(MARLIN_RELEASE_CUDA_ARCHS 80 86 89 90a 100 120 80-virtual)

function(marlin_cuda_gencode_flags out_var)
  if(DEFINED ENV{MARLIN_CUDA_ARCHS} AND NOT "$ENV{MARLIN_CUDA_ARCHS}" STREQUAL ""
     AND NOT "$ENV{MARLIN_CUDA_ARCHS}" STREQUAL "release")
    string(REPLACE "," ";" archs "$ENV{MARLIN_CUDA_ARCHS}")
    string(REPLACE " " ";" archs "${archs}")
    list(REMOVE_ITEM archs "")
  else()
    set(archs ${MARLIN_RELEASE_CUDA_ARCHS})
  endif()
  set(flags "")
  set(sass "")
  set(ptx "")
  foreach(arch IN LISTS archs)
    if(arch MATCHES "^([0-9]+[a-z]?)(-real)?$")
      list(APPEND flags "-gencode=arch=compute_${CMAKE_MATCH_1},code=sm_${CMAKE_MATCH_1}")
      list(APPEND sass "sm_${CMAKE_MATCH_1}")
    elseif(arch MATCHES "^([0-9]+[a-z]?)-virtual$")
      list(APPEND flags "-gencode=arch=compute_${CMAKE_MATCH_1},code=compute_${CMAKE_MATCH_1}")
      list(APPEND ptx "compute_${CMAKE_MATCH_1}")
    else()
      message(FATAL_ERROR "MARLIN_CUDA_ARCHS: '${arch}' is not an SM version like 80, 90a, 80-real or 80-virtual")
    endif()
  endforeach()
  # Compressed fatbin (CUDA >= 12.8): the SASS of every target is stored compressed; the driver decompresses the
  # image of the GPU it runs on when the module loads.
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.8)
    list(APPEND flags "-compress-mode=size")
  endif()
  message(STATUS "Marlin: CUDA SASS ${sass}, PTX ${ptx}")
  set(${out_var} "${flags}" PARENT_SCOPE)
endfunction()

function(marlin_add_addon)
  cmake_parse_arguments(ARG "" "NAME;ADDON" "SOURCES" ${ARGN})
  if(NOT ARG_NAME)
    message(FATAL_ERROR "marlin_add_addon: NAME is required")
  endif()

  # node-addon-api is header-only; ask Node where this package resolves it.
  execute_process(
    COMMAND "${MARLIN_NODE}" -p "require('node-addon-api').include_dir"
    WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}"
    OUTPUT_VARIABLE napi_inc OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE napi_rc)
  if(NOT napi_rc EQUAL 0)
    message(FATAL_ERROR "node-addon-api not found from ${CMAKE_CURRENT_SOURCE_DIR}: run pnpm install")
  endif()
  get_filename_component(napi_inc "${napi_inc}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")

  set(gen_dir "${CMAKE_CURRENT_BINARY_DIR}/generated")
  set(gen_outputs "")
  set(kit_sources "")
  if(ARG_ADDON)
    set(gen_cmd "${MARLIN_NODE}" "${MARLIN_REPO_ROOT}/tools/gen-kernel-instances.mjs" "${gen_dir}" --addon "${ARG_ADDON}")
    execute_process(COMMAND ${gen_cmd} --list OUTPUT_VARIABLE gen_names RESULT_VARIABLE gen_rc
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT gen_rc EQUAL 0)
      message(FATAL_ERROR "tools/gen-kernel-instances.mjs --addon ${ARG_ADDON} --list failed")
    endif()
    string(REPLACE "\n" ";" gen_names "${gen_names}")
    foreach(g IN LISTS gen_names)
      list(APPEND gen_outputs "${gen_dir}/${g}")
    endforeach()
    add_custom_command(
      OUTPUT ${gen_outputs}
      COMMAND ${gen_cmd}
      DEPENDS "${MARLIN_REPO_ROOT}/tools/gen-kernel-instances.mjs"
              "${MARLIN_REPO_ROOT}/packages/core/src/dispatch/kernel-table.json"
      COMMENT "Generating the ${ARG_ADDON} kernel instances from kernel-table.json"
      VERBATIM)
    set(kit_sources ${MARLIN_RUNTIME_SOURCES} ${MARLIN_NAPI_SOURCES} ${MARLIN_KIT_SOURCES})
  endif()

  add_library(${ARG_NAME} SHARED ${ARG_SOURCES} ${kit_sources} ${gen_outputs} ${CMAKE_JS_SRC})
  set_target_properties(${ARG_NAME} PROPERTIES
    PREFIX "" SUFFIX ".node"
    CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
    CUDA_RUNTIME_LIBRARY Static
    CUDA_ARCHITECTURES OFF
    CUDA_SEPARABLE_COMPILATION OFF
    POSITION_INDEPENDENT_CODE ON
    CXX_VISIBILITY_PRESET hidden CUDA_VISIBILITY_PRESET hidden)
  target_include_directories(${ARG_NAME} PRIVATE
    "${MARLIN_NATIVE_DIR}/include" "${MARLIN_NATIVE_DIR}/common" "${MARLIN_NATIVE_DIR}/kernels"
    "${MARLIN_NATIVE_DIR}" "${MARLIN_NATIVE_DIR}/napi" "${gen_dir}" "${napi_inc}" ${CMAKE_JS_INC})
  target_compile_definitions(${ARG_NAME} PRIVATE
    NAPI_VERSION=9 NODE_ADDON_API_CPP_EXCEPTIONS NODE_ADDON_API_DISABLE_DEPRECATED
    NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED)

  marlin_cuda_gencode_flags(gencode)
  target_compile_options(${ARG_NAME} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-O3 -Wall -Wextra -Wno-unused-parameter>
    $<$<COMPILE_LANGUAGE:CUDA>:-O3 -lineinfo ${gencode} -Xptxas=-v -Xptxas=-warn-spills,-warn-lmem-usage
                                --expt-relaxed-constexpr -Xcompiler=-fPIC>)
  target_link_options(${ARG_NAME} PRIVATE $<$<LINK_LANGUAGE:CUDA>:${gencode}>)
  target_link_libraries(${ARG_NAME} PRIVATE ${CMAKE_JS_LIB} ${CMAKE_DL_LIBS})
endfunction()
