# The layer table of docs/architecture.md ("Layers") turned into CMake targets, so that an
# include the table forbids fails to compile, not only scripts/check-layers.
#
# Invariants:
# - The table between <!-- layers:begin --> and <!-- layers:end --> is the only list of the
#   graph: it is read here at configure time (an edit of the page re-runs configure) and by
#   scripts/check-layers; nothing else names which layer may include which.
# - Layer L compiles against an include view, ${CMAKE_BINARY_DIR}/layer-include/L/, holding
#   symbolic links to src/<X> for X in {L} and the layers of L's row only; never src/ itself.
#   The view is a PRIVATE include directory, and the layers of L's row are linked PRIVATE,
#   so nothing reaches a consumer of smtpsd_L except link-only dependencies (static libraries
#   carry them as $<LINK_ONLY:...>, and CMake orders the link line from that graph).
# - app/ is one layer with one view per program folder: app/<program> sees the layers of the
#   app row, app/<program> and app/common (app/common sees itself only), through a generated
#   app/ directory of links, so one program including the other's folder fails too.
# - A folder of src/ without a row, or a row naming no folder, stops configure.

set(SMTPSD_LAYER_DOC ${PROJECT_SOURCE_DIR}/docs/architecture.md)
set(SMTPSD_LAYER_VIEWS ${CMAKE_BINARY_DIR}/layer-include)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${SMTPSD_LAYER_DOC})

file(READ ${SMTPSD_LAYER_DOC} layer_doc)
if(NOT layer_doc MATCHES "<!-- layers:begin -->(.*)<!-- layers:end -->")
  message(FATAL_ERROR
    "${SMTPSD_LAYER_DOC}: no layer table between <!-- layers:begin --> and <!-- layers:end -->")
endif()
# Only the first two cells of each row are read (the third is prose and may hold anything).
string(REGEX MATCHALL "\n\\|[ ]*[a-z_]+[ ]*\\|[^|\n]*\\|" layer_rows "${CMAKE_MATCH_1}")
set(SMTPSD_LAYERS "")
foreach(row IN LISTS layer_rows)
  string(REGEX MATCH "^\n\\|[ ]*([a-z_]+)[ ]*\\|([^|\n]*)\\|$" unused "${row}")
  set(layer ${CMAKE_MATCH_1})
  string(STRIP "${CMAKE_MATCH_2}" names)
  if(layer STREQUAL "layer")
    continue() # the header row
  endif()
  set(allowed "")
  if(NOT names STREQUAL "-")
    string(REPLACE "," ";" names "${names}")
    foreach(name IN LISTS names)
      string(STRIP "${name}" name)
      list(APPEND allowed ${name})
    endforeach()
  endif()
  list(APPEND SMTPSD_LAYERS ${layer})
  set(SMTPSD_LAYER_ALLOWED_${layer} ${allowed})
endforeach()

file(GLOB layer_folders LIST_DIRECTORIES true RELATIVE ${PROJECT_SOURCE_DIR}/src
  ${PROJECT_SOURCE_DIR}/src/*)
foreach(folder IN LISTS layer_folders)
  if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/src/${folder} AND NOT folder IN_LIST SMTPSD_LAYERS)
    message(FATAL_ERROR "src/${folder}: no row in the layer table of docs/architecture.md")
  endif()
endforeach()
foreach(layer IN LISTS SMTPSD_LAYERS)
  foreach(name IN LISTS layer SMTPSD_LAYER_ALLOWED_${layer})
    if(NOT IS_DIRECTORY ${PROJECT_SOURCE_DIR}/src/${name})
      message(FATAL_ERROR
        "docs/architecture.md: layer table names '${name}', which is not a folder of src/")
    endif()
  endforeach()
endforeach()

# Makes `directory` hold exactly one symbolic link <name> -> <target> per pair of `links`
# (name target name target ...). Links left by an earlier table are removed one by one, never
# recursively: a recursive removal could follow a link into src/.
function(smtpsd_link_directory directory)
  file(MAKE_DIRECTORY ${directory})
  set(wanted "")
  set(pairs ${ARGN})
  while(pairs)
    list(POP_FRONT pairs name target)
    list(APPEND wanted ${name})
    file(CREATE_LINK ${target} ${directory}/${name} SYMBOLIC)
  endwhile()
  file(GLOB present LIST_DIRECTORIES true RELATIVE ${directory} ${directory}/*)
  foreach(name IN LISTS present)
    if(NOT name IN_LIST wanted AND IS_SYMLINK ${directory}/${name})
      file(REMOVE ${directory}/${name})
    endif()
  endforeach()
endfunction()

# The view of `layer` (or of app/<program> when `program` is given): returns its directory.
function(smtpsd_layer_view out layer program)
  set(links "")
  set(view ${SMTPSD_LAYER_VIEWS}/${layer})
  if(program)
    set(view ${SMTPSD_LAYER_VIEWS}/${layer}/${program})
    set(programs ${program})
    if(NOT program STREQUAL "common")
      list(APPEND programs common)
    endif()
    set(app_links "")
    foreach(name IN LISTS programs)
      list(APPEND app_links ${name} ${PROJECT_SOURCE_DIR}/src/${layer}/${name})
    endforeach()
    if(IS_SYMLINK ${view}/${layer})
      file(REMOVE ${view}/${layer})
    endif()
    smtpsd_link_directory(${view}/${layer} ${app_links}) # a directory, kept as it is no link
  else()
    list(APPEND links ${layer} ${PROJECT_SOURCE_DIR}/src/${layer})
  endif()
  foreach(name IN LISTS SMTPSD_LAYER_ALLOWED_${layer})
    list(APPEND links ${name} ${PROJECT_SOURCE_DIR}/src/${name})
  endforeach()
  smtpsd_link_directory(${view} ${links})
  set(${out} ${view} PARENT_SCOPE)
endfunction()

# Compiles `target` as a part of `layer` (app/<program> when `program` is given): the view
# as its only project include directory, the layers of the row linked PRIVATE.
function(smtpsd_use_layer_view target layer program)
  smtpsd_layer_view(view ${layer} "${program}")
  target_include_directories(${target} PRIVATE ${view})
  foreach(name IN LISTS SMTPSD_LAYER_ALLOWED_${layer})
    target_link_libraries(${target} PRIVATE smtpsd_${name})
  endforeach()
endfunction()
