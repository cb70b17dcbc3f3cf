/* formats/safetensors_write.c - placeholder: not written yet */
typedef int ptq_placeholder_safetensors_write;
