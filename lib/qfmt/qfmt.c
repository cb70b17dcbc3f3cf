/* qfmt.c - the table of packed formats (qfmt.h): one row per format. */
#include "lib/qfmt/qfmt.h"

#include <string.h>

#include "lib/qfmt/gemv_int.h"

#define P(n, f, opt) {n, offsetof(ptq_qtensor, f), opt}

static const ptq_qfmt table[PTQ_QF_COUNT] = {
    [PTQ_QF_DENSE] = {.id = PTQ_QF_DENSE, .name = "dense", .bits_min = 0, .bits_max = 0, .block = 1,
     .flags = PTQ_QFMT_DTYPE, .version = 1,
     .payloads = {P("data", data, 0)},
     .payload_bytes = ptq_qf_dense_bytes, .check = ptq_qf_dense_check,
     .decode = ptq_qf_dense_decode, .gemv = ptq_qf_dense_gemv},
    [PTQ_QF_INT] = {.id = PTQ_QF_INT, .name = "int", .bits_min = 2, .bits_max = 8, .block = 32,
     .flags = PTQ_QFMT_GROUPED, .version = 1,
     .payloads = {P("qweight", qweight, 0), P("scales", scales, 0), P("zeros", zeros, 0),
                  P("g_idx", g_idx, 1)},
     .payload_bytes = ptq_qf_int_bytes, .check = ptq_qf_int_check,
     .decode = ptq_qf_int_decode, .gemv = ptq_gemv_int},
    [PTQ_QF_W8A8] = {.id = PTQ_QF_W8A8, .name = "w8a8", .bits_min = 8, .bits_max = 8, .block = 1,
     .flags = PTQ_QFMT_ACT, .version = 2, .qmax = 127.0f,
     .payloads = {P("codes", codes, 0), P("wscale", wscale, 0), P("act_scale", act_scale, 1)},
     .payload_bytes = ptq_qf_a8_bytes, .check = ptq_qf_a8_check, .decode = ptq_qf_a8_decode,
     .encode = ptq_qf_w8a8_encode, .code_value = ptq_qf_int8_value,
     .value_code = ptq_qf_int8_code},
    [PTQ_QF_FP8] = {.id = PTQ_QF_FP8, .name = "fp8", .bits_min = 8, .bits_max = 8, .block = 1,
     .flags = PTQ_QFMT_ACT, .version = 2, .qmax = 448.0f, /* PTQ_E4M3_MAX */
     .payloads = {P("codes", codes, 0), P("wscale", wscale, 0), P("act_scale", act_scale, 1)},
     .payload_bytes = ptq_qf_a8_bytes, .check = ptq_qf_a8_check, .decode = ptq_qf_a8_decode,
     .encode = ptq_qf_fp8_encode, .code_value = ptq_qf_e4m3_value,
     .value_code = ptq_qf_e4m3_code},
    [PTQ_QF_E8P] = {.id = PTQ_QF_E8P, .name = "e8p", .bits_min = 2, .bits_max = 4, .block = 8,
     .flags = PTQ_QFMT_BITS, .version = 4,
     .payloads = {P("codes", e8_codes, 0), P("scales", e8_scale, 0), P("su", e8_su, 0),
                  P("sv", e8_sv, 0)},
     .payload_bytes = ptq_qf_e8p_bytes, .check = ptq_qf_e8p_check,
     .decode = ptq_qf_e8p_decode, .gemv = ptq_qf_e8p_gemv},
    [PTQ_QF_AQLM] = {.id = PTQ_QF_AQLM, .name = "aqlm", .bits_min = 1, .bits_max = 16, .block = 8,
     .flags = PTQ_QFMT_CODEBOOKS, .version = 4,
     .payloads = {P("codes", aq_codes, 0), P("codebooks", aq_codebooks, 0),
                  P("scales", aq_scales, 0)},
     .payload_bytes = ptq_qf_aqlm_bytes, .check = ptq_qf_aqlm_check,
     .decode = ptq_qf_aqlm_decode, .gemv = ptq_qf_aqlm_gemv},
    [PTQ_QF_INT_HAD] = {.id = PTQ_QF_INT_HAD, .name = "int-had", .bits_min = 2, .bits_max = 8,
     .block = 32, .flags = PTQ_QFMT_GROUPED, .version = 5,
     .payloads = {P("qweight", qweight, 0), P("scales", scales, 0), P("zeros", zeros, 0),
                  P("g_idx", g_idx, 1), P("su", e8_su, 0), P("sv", e8_sv, 0)},
     .payload_bytes = ptq_qf_int_had_bytes, .check = ptq_qf_int_had_check,
     .decode = ptq_qf_int_had_decode, .gemv = ptq_qf_int_had_gemv},
    [PTQ_QF_KV_INT8] = {.id = PTQ_QF_KV_INT8, .name = "kv_int8", .bits_min = 8, .bits_max = 8, .block = 1,
     .flags = PTQ_QFMT_CACHE, .version = 2, .qmax = 127.0f,
     .code_value = ptq_qf_kv_value, .value_code = ptq_qf_kv_code},
};

const ptq_qfmt *ptq_qfmt_get(int id)
{
    return id >= 0 && id < PTQ_QF_COUNT && table[id].name ? &table[id] : NULL;
}

const ptq_qfmt *ptq_qfmt_row(int i) { return ptq_qfmt_get(i); }

const ptq_qfmt *ptq_qfmt_by_name(const char *name)
{
    for (int i = 0; i < PTQ_QF_COUNT; i++)
        if (table[i].name && !(table[i].flags & PTQ_QFMT_CACHE) && !strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

void *ptq_qfmt_payload_ptr(const ptq_qfmt *f, const ptq_qtensor *q, int i)
{
    void *p;
    memcpy(&p, (const char *)q + f->payloads[i].field, sizeof p);
    return p;
}

void ptq_qfmt_set_payload(const ptq_qfmt *f, ptq_qtensor *q, int i, void *p)
{
    memcpy((char *)q + f->payloads[i].field, &p, sizeof p);
}

int ptq_qfmt_payload_index(const ptq_qfmt *f, const char *name)
{
    for (int i = 0; i < PTQ_QFMT_MAX_PAYLOADS && f->payloads[i].name; i++)
        if (!strcmp(f->payloads[i].name, name)) return i;
    return -1;
}
