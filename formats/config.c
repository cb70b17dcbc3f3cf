/* formats/config.c - placeholder: not written yet */
typedef int ptq_placeholder_config;
