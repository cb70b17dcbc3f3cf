/* config_json.h - a parsed model config (config.h) written back as a JSON
 * object with the Hugging Face config.json names: what `ptqc inspect --json`
 * shows of a checkpoint. */
#ifndef PTQC_CONFIG_JSON_H
#define PTQC_CONFIG_JSON_H

#include <cJSON.h>

#include "formats/config.h"

/* "linear", "llama3" or "none" for enum ptq_rope_scaling r. */
const char *ptq_rope_name(int r);
/* model_type, sizes, rms_norm_eps and rope_theta (as the shortest decimal
 * that reads back as the float), rope_scaling (null or its object), tied
 * embeddings, qkv_bias, bos/eos ids and torch_dtype (null when absent). */
cJSON *ptq_config_json(const ptq_config *c);

#endif
