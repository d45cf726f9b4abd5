# Runs at build time (cmake -P): IN, a scdoc source, becomes OUT, a man
# page in roff. scdoc reads stdin and writes stdout, which
# add_custom_command cannot redirect portably; execute_process can.
execute_process(COMMAND "${SCDOC}" INPUT_FILE "${IN}" OUTPUT_FILE "${OUT}.tmp"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE "${OUT}.tmp")
  message(FATAL_ERROR "scdoc ${IN}: ${err}")
endif()
file(RENAME "${OUT}.tmp" "${OUT}")
